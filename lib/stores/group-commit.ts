// Group commit for the SQL stores (docs/ARCHITECTURE.md, "Store layout"): writes queued while a
// group runs go together in the next one, so a busy server pays one transaction (and one fsync)
// per group, not per write. One flusher, which waits one turn of the event loop before its first
// group, so the writes of every request handled in that turn share it instead of the first one
// leaving alone. Several flushers at once made groups of ~3 writes, each paying the statement's
// fixed cost.
//
// A group stuck longer than `stallMs` (PostgreSQL: waiting for a customer lock a deletion holds)
// lets one more flusher take the queue, so other customers' writes are not held up behind it.
import { setImmediate as nextTurn } from 'node:timers/promises'

export interface GroupCommitOptions {
  /** Most writes per group. */
  maxGroup: number
  /** Most groups in flight at once, counting the stuck ones. */
  maxFlushers: number
  /** A group running this long lets another flusher start. */
  stallMs: number
}

export class GroupCommit<W> {
  readonly #run: (group: W[]) => Promise<void> | void
  readonly #options: GroupCommitOptions
  #queue: W[] = []
  readonly #flushers = new Set<Promise<void>>()
  /**
   * Flushers still looping. It drops in the same synchronous step as a flusher's last look at the
   * queue, so a write pushed after that look always starts a new one.
   */
  #active = 0

  /** `run` settles every write of its group itself (it must not throw). */
  constructor (run: (group: W[]) => Promise<void> | void, options: GroupCommitOptions) {
    this.#run = run
    this.#options = options
  }

  push (write: W): void {
    this.#queue.push(write)
    if (this.#active === 0) this.#start()
  }

  /** Resolves when every write queued so far has run. */
  async idle (): Promise<void> {
    while (this.#flushers.size > 0) await Promise.all(this.#flushers)
  }

  /** Runs what is queued now, in this call stack (for a synchronous `run`: SQLite's close). */
  flushNow (): void {
    while (this.#queue.length > 0) {
      const ran = this.#run(this.#queue.splice(0, this.#options.maxGroup))
      if (ran instanceof Promise) ran.catch(() => {}) // run settles its writes itself
    }
  }

  #start (): void {
    this.#active++
    const flusher = this.#flush()
    this.#flushers.add(flusher)
    flusher.finally(() => { this.#flushers.delete(flusher) }).catch(() => {})
  }

  async #flush (): Promise<void> {
    await nextTurn()
    while (this.#queue.length > 0) {
      const group = this.#queue.splice(0, this.#options.maxGroup)
      const stalled = setTimeout(() => {
        if (this.#queue.length > 0 && this.#active < this.#options.maxFlushers) this.#start()
      }, this.#options.stallMs)
      try {
        await this.#run(group)
      } finally {
        clearTimeout(stalled)
      }
    }
    this.#active--
  }
}
