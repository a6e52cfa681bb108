// A lease is a writer's hold on the labels it wrote ahead of its data (docs/ARCHITECTURE.md, "Labels and leases"). A deletion
// that covers them dooms the lease: `signal` aborts, and `commit()` erases what was written and
// throws, so nothing stored under a doomed lease outlives the deletion.
import { FST_CUSTOMER_DATA_LEASE_DOOMED } from './errors.js'

export interface LeaseResource { kind: string, id: string }

/** What a lease needs from the engine that issued it. */
export interface LeaseHost {
  commitLease(lease: Lease): Promise<'committed' | 'doomed'>
  cancelLease(lease: Lease): Promise<void>
  abandonLease(lease: Lease): Promise<void>
  renewLease(lease: Lease): Promise<void>
  releaseLease(lease: Lease): void
  readonly leaseMs: number
}

export class Lease {
  readonly id: string
  readonly resources: LeaseResource[]
  readonly #host: LeaseHost
  // Made on first use: most leases (short requests) never look at their signal.
  #controller: AbortController | null = null
  #doomed = false
  #ended = false
  #keepAlive: NodeJS.Timeout | null = null

  /** False when the request named no customer: nothing was labeled and commit() has nothing to do. */
  readonly labeled: boolean
  readonly instance: string
  /**
   * The write replaces the resource: on commit, every other committed label of it is withdrawn,
   * so it belongs to this writer's customers only (docs/ARCHITECTURE.md, withdrawing labels).
   */
  readonly replace: boolean

  constructor (host: LeaseHost, id: string, instance: string, resources: LeaseResource[], labeled: boolean, replace = false) {
    this.#host = host
    this.id = id
    this.instance = instance
    this.resources = resources
    this.labeled = labeled
    this.replace = replace
  }

  /** Aborts when a deletion dooms this lease; stop writing and call commit() or cancel(). */
  get signal (): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController()
      if (this.#doomed) this.#controller.abort(new FST_CUSTOMER_DATA_LEASE_DOOMED())
    }
    return this.#controller.signal
  }

  get doomed (): boolean { return this.#doomed }
  get ended (): boolean { return this.#ended }

  /** Called by the engine when a doom notice names this lease. */
  doom (): void {
    if (this.#doomed) return
    this.#doomed = true
    this.#controller?.abort(new FST_CUSTOMER_DATA_LEASE_DOOMED())
  }

  /**
   * Makes the labels permanent. If a deletion doomed the lease, erases the resources it labeled,
   * then throws FST_CUSTOMER_DATA_LEASE_DOOMED (409).
   */
  async commit (): Promise<void> {
    this.#end()
    const outcome = await this.#host.commitLease(this)
    if (outcome === 'doomed') {
      this.doom()
      throw new FST_CUSTOMER_DATA_LEASE_DOOMED()
    }
  }

  /** Withdraws the labels: call it only when nothing was stored under this lease. */
  async cancel (): Promise<void> {
    this.#end()
    await this.#host.cancelLease(this)
  }

  /**
   * Ends the lease without committing, when the writer failed and may have stored part of its
   * data: the labels stay (pending), so a later deletion still finds and erases that data.
   */
  async release (): Promise<void> {
    this.#end()
    await this.#host.abandonLease(this)
  }

  /** Extends the lease by the lease period. Long-lived writers call it (or keepAlive()). */
  async renew (): Promise<void> {
    if (this.#ended) return
    await this.#host.renewLease(this)
  }

  /** Renews every third of the lease period until the lease ends. */
  keepAlive (): this {
    if (this.#keepAlive === null && !this.#ended) {
      this.#keepAlive = setInterval(() => {
        this.renew().catch(() => {}) // a failed renewal only shortens the lease; the next one retries
      }, Math.max(10, Math.floor(this.#host.leaseMs / 3)))
      this.#keepAlive.unref()
    }
    return this
  }

  #end (): void {
    if (this.#ended) throw new Error('This lease has already been committed or cancelled')
    this.#ended = true
    if (this.#keepAlive !== null) clearInterval(this.#keepAlive)
    this.#keepAlive = null
    this.#host.releaseLease(this)
  }
}
