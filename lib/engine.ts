// The deletion engine (docs/ARCHITECTURE.md, "Labels and leases", "Deletion"): issues leases for write-ahead labels, records deletions,
// erases covered resources in batches through the host's erasers, retries with capped exponential
// backoff, and reaps doomed labels whose writer died. It knows nothing of HTTP.
import { randomUUID } from 'node:crypto'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { DeletionEvents, eraserFailure, failedKind, failureMessage } from './deletion-events.js'
import { customerDigest, logTag } from './digest.js'
import {
  FST_CUSTOMER_DATA_INVALID_OPTION, FST_CUSTOMER_DATA_INVALID_RESOURCE, FST_CUSTOMER_DATA_NO_ERASER,
  FST_CUSTOMER_DATA_STORE_UNAVAILABLE
} from './errors.js'
import { Lease, type LeaseHost } from './lease.js'
import { leaseId } from './lease-id.js'
import { checkEngineTimings, ENGINE_DEFAULTS } from './options.js'
import type { ClaimedLabel, DeletionRecord, ExportPage, LabelStore } from './store.js'

/** Erases resources of one kind. Idempotent: an id that does not exist is not an error. */
export type Eraser = (ids: string[], context: { instance: string, signal: AbortSignal }) => Promise<void>

export interface EngineLogger {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
}

export interface EngineOptions {
  store: LabelStore
  /** One eraser per resource kind. */
  erasers: Record<string, Eraser>
  /** Keys customer digests. Default: a random secret created once and kept in the store. */
  secret?: string | Buffer
  /** Lease period in ms; long-lived writers renew. Default 60 000. */
  leaseMs?: number
  /** Labels erased per batch. Default 500. */
  batchSize?: number
  /** How often unfinished deletions are resumed and expired doomed labels reaped, in ms. Default 10 000. */
  reaperMs?: number
  /** An eraser call that takes longer fails and is retried. Default 30 000 ms. */
  eraserTimeoutMs?: number
  /** First retry delay after an eraser failure. Default 100 ms. */
  retryMinMs?: number
  /** Retry delays double up to this cap. Default 30 000 ms. */
  retryMaxMs?: number
  logger?: EngineLogger
}

export { ENGINE_DEFAULTS }

const CLAIM_MARGIN_MS = 5000
const KIND = /^[A-Za-z0-9_.:-]{1,64}$/
/** Longest resource id, in UTF-16 units: ids are host names for things (a word, a file), not content. */
export const MAX_RESOURCE_ID = 1024

/** A resource id every store can hold: 1–1024 characters, no NUL (no PostgreSQL text column takes one). */
export function isValidResourceId (id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_RESOURCE_ID && !id.includes('\u0000')
}
const silent: EngineLogger = { info () {}, warn () {}, error () {} }

export class CustomerDataEngine implements LeaseHost {
  readonly store: LabelStore
  readonly leaseMs: number
  readonly batchSize: number
  readonly reaperMs: number
  readonly eraserTimeoutMs: number
  readonly retryMinMs: number
  readonly retryMaxMs: number
  readonly #erasers: Map<string, Eraser>
  readonly #log: EngineLogger
  readonly #owner = randomUUID()
  /** Open leases by id, for doom notices. A lease its writer forgot is dropped by the reaper. */
  readonly #leases = new Map<string, { lease: Lease, since: number }>()

  readonly #runs = new Map<string, Promise<DeletionRecord | null>>()
  /** What happens to labels and deletions, for the host's audit trail and the metrics. */
  readonly events: DeletionEvents
  readonly #stop = new AbortController()
  #secretOption: Buffer | undefined
  #secret: Buffer | undefined
  #timer: NodeJS.Timeout | null = null
  #reaping: Promise<void> | null = null
  #unsubscribe: (() => void) | null = null

  constructor (options: EngineOptions) {
    if (options === null || typeof options !== 'object') throw new FST_CUSTOMER_DATA_INVALID_OPTION('options must be an object')
    const { store, erasers } = options
    if (store === null || typeof store !== 'object' || typeof store.label !== 'function') {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION('store must be a LabelStore, e.g. sqliteStore({ path }) or memoryStore()')
    }
    if (erasers === null || typeof erasers !== 'object') {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION('erasers must be an object mapping each resource kind to an async function (ids, { instance }) => void')
    }
    this.#erasers = new Map()
    for (const [kind, fn] of Object.entries(erasers)) {
      if (!KIND.test(kind)) throw new FST_CUSTOMER_DATA_INVALID_OPTION(`eraser kind "${kind}" must be 1-64 letters, digits or _.:-`)
      if (typeof fn !== 'function') throw new FST_CUSTOMER_DATA_INVALID_OPTION(`the eraser for kind "${kind}" must be a function`)
      this.#erasers.set(kind, fn)
    }
    if (options.secret !== undefined) {
      const secret = typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : options.secret
      if (!Buffer.isBuffer(secret) || secret.length < 16) throw new FST_CUSTOMER_DATA_INVALID_OPTION('secret must be a string or Buffer of at least 16 bytes')
      this.#secretOption = secret
    }
    this.store = store
    const timings = checkEngineTimings(options)
    this.leaseMs = timings.leaseMs
    this.batchSize = timings.batchSize
    this.reaperMs = timings.reaperMs
    this.eraserTimeoutMs = timings.eraserTimeoutMs
    this.retryMinMs = timings.retryMinMs
    this.retryMaxMs = timings.retryMaxMs
    this.#log = options.logger ?? silent
    this.events = new DeletionEvents(this.#log)
  }

  hasEraser (kind: string): boolean { return this.#erasers.has(kind) }
  get kinds (): string[] { return [...this.#erasers.keys()] }

  async start (): Promise<void> {
    await this.store.open()
    this.#secret = this.#secretOption ?? await this.store.secret()
    this.#unsubscribe = this.store.onDoom((leaseIds) => {
      for (const id of leaseIds) {
        const lease = this.#leases.get(id)?.lease
        if (lease !== undefined && !lease.doomed) this.events.publish('lease-doomed', { instance: lease.instance, leaseId: id })
        lease?.doom()
      }
    })
    this.#timer = setInterval(() => { this.reap() }, this.reaperMs)
    this.#timer.unref()
    this.reap() // resume what a previous process left unfinished
  }

  async close (): Promise<void> {
    if (this.#stop.signal.aborted) return
    this.#stop.abort()
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#unsubscribe?.()
    await this.#reaping
    await Promise.allSettled([...this.#runs.values()])
    await this.store.close()
  }

  digest (customerId: string): string {
    if (this.#secret === undefined) throw new Error('The customer-data engine has not been started')
    return customerDigest(this.#secret, customerId)
  }

  /**
   * Labels (kind, id) for each customer before the data is written (write-ahead). With
   * `replace`, the write replaces the resource: its commit withdraws every other label of it.
   */
  async label (instance: string, customerIds: readonly string[], kind: string, id: string, options?: { replace?: boolean }): Promise<Lease> {
    this.#checkResource(kind, id)
    const now = Date.now()
    const replace = options?.replace === true
    const lease = new Lease(this, leaseId(now), instance, [{ kind, id }], customerIds.length > 0, replace)
    if (!lease.labeled) return lease
    const customers = customerIds.map((c) => this.digest(c))
    await this.#storeCall(() => this.store.label([{ leaseId: lease.id, instance, customers, kind, id, now, expiresAt: now + this.leaseMs }]))
    this.events.publish('labels-written', { instance, kind, count: customers.length })
    this.#leases.set(lease.id, { lease, since: now })
    return lease
  }

  /**
   * Withdraws the committed labels of these resources, for every customer: call it when the host
   * deletes or replaces them itself, so that a later resource of the same kind and id, stored for
   * another customer, is never erased by the first customer's deletion. Returns how many labels
   * were removed.
   */
  async withdraw (instance: string, kind: string, ids: string[]): Promise<number> {
    if (!Array.isArray(ids)) throw new FST_CUSTOMER_DATA_INVALID_RESOURCE(`the ids of "${String(kind)}" resources to withdraw must be an array`)
    for (const id of ids) this.#checkResource(kind, id)
    if (ids.length === 0) return 0
    return await this.#storeCall(() => this.store.withdraw({ instance, kind, ids }))
  }

  #checkResource (kind: string, id: unknown): void {
    if (!this.#erasers.has(kind)) throw new FST_CUSTOMER_DATA_NO_ERASER(String(kind))
    // U+0000 fits no PostgreSQL text column: refused here, the same way for every store.
    if (!isValidResourceId(id)) {
      throw new FST_CUSTOMER_DATA_INVALID_RESOURCE(`the id of a "${kind}" resource must be a non-empty string of at most ${MAX_RESOURCE_ID} characters, without NUL`)
    }
  }

  async commitLease (lease: Lease): Promise<'committed' | 'doomed'> {
    if (!lease.labeled) {
      // No customer labeled this write, yet it replaced the resource: the old labels must go.
      if (lease.replace) {
        for (const r of lease.resources) await this.#storeCall(() => this.store.withdraw({ instance: lease.instance, kind: r.kind, ids: [r.id] }))
      }
      return 'committed'
    }
    const result = await this.#storeCall(() => this.store.commit(lease.id, Date.now(), lease.replace))
    if (result.status === 'committed') return 'committed'
    // Doomed: what this writer stored must not outlive the deletion that doomed it.
    await this.#eraseWithRetry(lease)
    const deletions = await this.#storeCall(() => this.store.dropLease(lease.id, true))
    for (const d of deletions) this.#kick(d.id, d.instance)
    return 'doomed'
  }

  async cancelLease (lease: Lease): Promise<void> {
    if (!lease.labeled) return
    const deletions = await this.#storeCall(() => this.store.dropLease(lease.id, false))
    for (const d of deletions) this.#kick(d.id, d.instance)
  }

  async abandonLease (lease: Lease): Promise<void> {
    if (!lease.labeled) return
    // Expiring now lets the reaper erase at once if a deletion dooms these labels.
    const lost = await this.#storeCall(() => this.store.renew([lease.id], Date.now()))
    if (lost.length > 0) lease.doom()
  }

  async renewLease (lease: Lease): Promise<void> {
    if (!lease.labeled) return
    const entry = this.#leases.get(lease.id)
    if (entry !== undefined) entry.since = Date.now()
    const lost = await this.#storeCall(() => this.store.renew([lease.id], Date.now() + this.leaseMs))
    if (lost.length > 0) lease.doom()
  }

  releaseLease (lease: Lease): void {
    this.#leases.delete(lease.id)
  }

  /**
   * Records (or joins) the deletion of everything labeled (instance, customerId) and waits up to
   * waitMs for it to complete. The record says `running` if it has not.
   */
  async requestDeletion (instance: string, customerId: string, waitMs: number): Promise<DeletionRecord> {
    const customer = this.digest(customerId)
    const { deletion, created } = await this.#storeCall(() => this.store.requestDeletion({ id: randomUUID(), instance, customer, now: Date.now() }))
    this.#log.info({ deletionId: deletion.id, customer: logTag(customer), joined: !created }, 'customer data deletion recorded')
    this.events.publish('deletion-recorded', { deletionId: deletion.id, instance, created, createdAt: deletion.createdAt })
    return await this.awaitDeletion(deletion, waitMs)
  }

  /** Drives the deletion until it completes or waitMs passes; returns its latest record. */
  async awaitDeletion (deletion: DeletionRecord, waitMs: number): Promise<DeletionRecord> {
    const deadline = Date.now() + waitMs
    let latest = deletion
    if (latest.status !== 'completed') this.#kick(deletion.id, deletion.instance) // starts now, even with waitMs 0
    while (latest.status !== 'completed' && !this.#stop.signal.aborted) {
      const left = deadline - Date.now()
      if (left <= 0) break
      const rec = await raceTimeout(this.#kick(deletion.id, deletion.instance), left)
      if (rec === undefined) break
      if (rec !== null) latest = rec
      if (latest.status !== 'completed') await sleep(Math.min(50, Math.max(0, deadline - Date.now())), this.#stop.signal)
    }
    // A completed record is final (its counts included); a running one is read again for its latest counts.
    if (latest.status === 'completed') return latest
    return (await this.#storeCall(() => this.store.getDeletion(deletion.instance, deletion.id))) ?? latest
  }

  async getDeletion (instance: string, deletionId: string): Promise<DeletionRecord | null> {
    return await this.#storeCall(() => this.store.getDeletion(instance, deletionId))
  }

  async exportLabels (instance: string, customerId: string, limit: number, cursor: string | null): Promise<ExportPage> {
    const customer = this.digest(customerId)
    return await this.#storeCall(() => this.store.exportLabels(instance, customer, limit, cursor))
  }

  /** One pass of the reaper: resumes every unfinished deletion. Returns when the pass ends. */
  reap (): Promise<void> {
    if (this.#reaping !== null || this.#stop.signal.aborted) return this.#reaping ?? Promise.resolve()
    this.#reaping = (async () => {
      this.#dropForgottenLeases()
      try {
        const running = await this.store.runningDeletions(1000)
        for (const d of running) {
          if (this.#stop.signal.aborted) break
          await this.#kick(d.id, d.instance)
        }
      } catch (err) {
        this.#log.warn({ err: describe(err) }, 'customer data reaper pass failed; it runs again next period')
      } finally {
        this.#reaping = null
      }
    })()
    return this.#reaping
  }

  /**
   * A lease never committed nor cancelled, and not renewed for 10 lease periods, belongs to a
   * writer that forgot it: its labels stay (pending, expired) for any deletion to find, and the
   * map lets go of it.
   */
  #dropForgottenLeases (): void {
    const cutoff = Date.now() - 10 * this.leaseMs
    for (const [id, entry] of this.#leases) {
      if (entry.since < cutoff) this.#leases.delete(id)
    }
  }

  /** Runs the deletion in this process unless it already is; callers share one run. */
  #kick (deletionId: string, instance: string): Promise<DeletionRecord | null> {
    let run = this.#runs.get(deletionId)
    if (run === undefined) {
      run = this.#run(deletionId, instance).finally(() => { this.#runs.delete(deletionId) })
      this.#runs.set(deletionId, run)
    }
    return run
  }

  async #run (deletionId: string, instance: string): Promise<DeletionRecord | null> {
    let failures = 0
    let progressed = false
    let after: string | null = null
    while (!this.#stop.signal.aborted) {
      let claimed: ClaimedLabel[] = []
      try {
        const now = Date.now()
        const batch = await this.store.claimBatch(deletionId, {
          owner: this.#owner,
          limit: this.batchSize,
          now,
          after,
          // A claim outlives the slowest eraser call, so no other worker erases the same batch meanwhile;
          // if this process dies, another takes the batch over soon after.
          claimUntil: now + this.eraserTimeoutMs + CLAIM_MARGIN_MS
        })
        if (batch.length === 0 && after !== null) {
          after = null // one more pass from the start: labels skipped on the way may be ready now
          continue
        }
        if (batch.length === 0) return await this.#finish(deletionId, instance)
        claimed = batch
        after = batch[batch.length - 1].key
        const erased = await this.#eraseBatch(instance, batch)
        await this.store.completeBatch(deletionId, batch.map((l) => l.key), erased)
        claimed = []
        this.events.publish('batch-erased', { deletionId, instance, erased })
        // The first success of a run also clears failures noted by a replica that ran it before.
        if (failures > 0 || !progressed) await this.#noteAttempt(deletionId, instance, null)
        progressed = true
        failures = 0
        if (batch.length < this.batchSize) {
          // A short batch took every label ready past the last pass's start: most deletions end
          // here, without a pass that claims nothing. If labels remain (a writer's, or ones another
          // worker held), the next pass starts from the beginning, as after an empty pass.
          const rec = await this.#finish(deletionId, instance)
          if (rec === null || rec.status === 'completed') return rec
          after = null
        }
        await yieldToLoop()
      } catch (err) {
        if (claimed.length > 0) await this.store.abandonBatch?.(deletionId, claimed.map((l) => l.key)).catch(() => {})
        failures++
        const delay = this.#backoff(failures)
        this.#log.warn({ deletionId, attempt: failures, retryInMs: delay, err: describe(err) }, 'customer data deletion batch failed; retrying')
        await this.#noteAttempt(deletionId, instance, { attempt: failures, nextRetryAt: Date.now() + delay, err })
        await sleep(delay, this.#stop.signal)
      }
    }
    return null
  }

  /** Completes the deletion if no covered label is left; returns its record either way. */
  async #finish (deletionId: string, instance: string): Promise<DeletionRecord | null> {
    const rec = await this.store.finishDeletion(deletionId, Date.now())
    if (rec?.status === 'completed') {
      this.#log.info({ deletionId, customer: logTag(rec.customer), erased: rec.erased }, 'customer data deletion completed')
      this.events.publish('deletion-completed', { deletionId, instance, erased: rec.erased, createdAt: rec.createdAt, completedAt: rec.completedAt ?? Date.now() })
      await this.store.compact?.()
    }
    return rec
  }

  async #eraseBatch (instance: string, batch: ClaimedLabel[]): Promise<Record<string, number>> {
    const byKind = new Map<string, Set<string>>()
    for (const l of batch) {
      let ids = byKind.get(l.kind)
      if (ids === undefined) byKind.set(l.kind, ids = new Set())
      ids.add(l.id)
    }
    const erased: Record<string, number> = {}
    for (const [kind, ids] of byKind) {
      await this.#callEraser(kind, [...ids], instance)
      erased[kind] = ids.size
    }
    return erased
  }

  async #callEraser (kind: string, ids: string[], instance: string): Promise<void> {
    const eraser = this.#erasers.get(kind)
    if (eraser === undefined) throw new FST_CUSTOMER_DATA_NO_ERASER(kind)
    const controller = new AbortController()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        const err = new Error(`eraser for kind "${kind}" timed out after ${this.eraserTimeoutMs} ms`)
        controller.abort(err)
        reject(err)
      }, this.eraserTimeoutMs)
    })
    try {
      await Promise.race([eraser(ids, { instance, signal: controller.signal }), timeout])
    } catch (err) {
      throw eraserFailure(kind, err)
    } finally {
      clearTimeout(timer)
    }
  }

  async #eraseWithRetry (lease: Lease): Promise<void> {
    const instance = lease.instance
    for (let attempt = 1; ; attempt++) {
      try {
        for (const r of lease.resources) await this.#callEraser(r.kind, [r.id], instance)
        return
      } catch (err) {
        // Past a few attempts the reaper takes over once the lease expires.
        if (attempt >= 5 || this.#stop.signal.aborted) throw err
        await sleep(this.#backoff(attempt), this.#stop.signal)
      }
    }
  }

  /**
   * Keeps a failed attempt (or, with null, renewed progress) with the deletion, where every
   * replica and the list route see it. Best effort: the retry goes on if the store refuses.
   */
  async #noteAttempt (deletionId: string, instance: string, failure: { attempt: number, nextRetryAt: number, err: unknown } | null): Promise<void> {
    const kind = failure === null ? null : failedKind(failure.err)
    const error = failure === null ? '' : failureMessage(failure.err)
    try {
      await this.store.noteDeletionAttempt(deletionId, failure === null ? null : { kind, error, failedAt: Date.now(), nextRetryAt: failure.nextRetryAt })
    } catch (err) {
      this.#log.warn({ deletionId, err: describe(err) }, 'customer data deletion attempt could not be recorded')
    }
    if (failure !== null && kind !== null) {
      this.events.publish('eraser-failed', { deletionId, instance, kind, error, attempt: failure.attempt, nextRetryAt: failure.nextRetryAt })
    }
  }

  #backoff (attempt: number): number {
    const cap = Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(attempt - 1, 30))
    return Math.round(cap / 2 + Math.random() * cap / 2)
  }

  async #storeCall<T> (fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      const { statusCode, code } = err as { statusCode?: number, code?: string }
      // The store's verdicts on its input pass through: they are the caller's mistake, not an outage.
      if (statusCode === 503 || code === 'FST_CUSTOMER_DATA_BAD_REQUEST' || code === 'FST_CUSTOMER_DATA_INVALID_RESOURCE') throw err
      this.#log.error({ err: describe(err) }, 'customer data store call failed')
      const wrapped = new FST_CUSTOMER_DATA_STORE_UNAVAILABLE()
      wrapped.cause = err
      throw wrapped
    }
  }
}

function describe (err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

function sleep (ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) { resolve(); return }
    const timer = setTimeout(done, ms)
    function done (): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}

async function raceTimeout<T> (promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => { timer = setTimeout(() => { resolve(undefined) }, ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
