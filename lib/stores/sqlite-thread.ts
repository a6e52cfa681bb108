// sqliteStore({ thread: true }): the same SQLite store, run by a worker thread of its own
// (docs/ARCHITECTURE.md, "Stores"). better-sqlite3 is synchronous, so in the event loop every label
// costs the loop the row's insert into the per-customer index and its page in the write-ahead log;
// here the loop only passes the calls of one turn to the thread in one message, and takes the
// answers back the same way. Everything else — durability before an acknowledgement, the one
// process per file, pending leases in memory — is the store's own, unchanged, inside the thread.
import { Worker } from 'node:worker_threads'
import { EventEmitter } from 'node:events'
import * as errors from '../errors.js'
import { SqliteProcessLock } from './sqlite-lock.js'
import type { SqliteStoreOptions } from './sqlite.js'
import type {
  ClaimedLabel, ClaimOptions, CommitResult, DeletionFailureInput, DeletionPage, DeletionProgress, DeletionRecord,
  DeletionRef, ExportPage, LabelInput, LabelStore, ListDeletionsOptions, RequestDeletionInput, RunningSummary, WithdrawInput
} from '../store.js'

/**
 * What the thread runs: the store's methods by name, called with the arguments the loop sent.
 * Only dynamic import(): the code runs as an ES module or as CommonJS, as the host was started.
 */
const WORKER = `
import('node:worker_threads').then(({ parentPort, workerData }) => {
  const METHODS = new Set(workerData.methods)
  let out = []
  let scheduled = false
  function flush () { scheduled = false; const batch = out; out = []; parentPort.postMessage(batch) }
  function send (reply) { out.push(reply); if (!scheduled) { scheduled = true; setImmediate(flush) } }
  function describe (err) {
    const e = err === null || typeof err !== 'object' ? { message: String(err) } : err
    return { name: String(e.name), message: String(e.message), stack: typeof e.stack === 'string' ? e.stack : undefined,
      code: typeof e.code === 'string' ? e.code : undefined, statusCode: typeof e.statusCode === 'number' ? e.statusCode : undefined }
  }
  // The host's thread holds the file's process lock: a lock taken here would be this thread's alone.
  const ready = import(workerData.module).then(({ SqliteStore }) => {
    const store = new SqliteStore(workerData.options, { callerHoldsLock: true })
    store.onDoom((leaseIds) => send([0, 2, leaseIds]))
    return store
  })
  parentPort.on('message', (calls) => {
    for (const [id, method, args] of calls) {
      ready.then(async (store) => {
        if (!METHODS.has(method)) throw new Error('no such store method: ' + method)
        const value = await store[method](...args)
        // A close answers last: what it settled (a label it flushed) is answered before it.
        if (method === 'close') await new Promise((resolve) => setImmediate(resolve))
        return value
      }).then((value) => send([id, 0, value]), (err) => send([id, 1, describe(err)]))
    }
  })
})
`

/** The store methods the thread answers (and nothing else). */
const METHODS = [
  'open', 'close', 'secret', 'label', 'renew', 'commit', 'withdraw', 'dropLease', 'requestDeletion', 'claimBatch',
  'completeBatch', 'finishDeletion', 'getDeletion', 'runningDeletions', 'exportLabels', 'compact', 'listDeletions',
  'deletionProgress', 'noteDeletionAttempt', 'runningSummary'
] as const
type Method = typeof METHODS[number]

/** A reply: [call id, 0 = value | 1 = error | 2 = doom notice, payload]. */
type Reply = [number, 0 | 1 | 2, unknown]
interface ErrorShape { name?: string, message: string, stack?: string, code?: string, statusCode?: number }

/** The thread's error as the class the rest of the library tests for (instanceof, code, statusCode). */
function revive (shape: ErrorShape): Error {
  const Known = typeof shape.code === 'string' && shape.code.startsWith('FST_CUSTOMER_DATA_') ? (errors as Record<string, unknown>)[shape.code] : undefined
  const err = typeof Known === 'function' ? new (Known as new () => Error)() : new Error(shape.message)
  err.message = shape.message
  if (typeof Known !== 'function') {
    if (shape.name !== undefined) err.name = shape.name
    if (shape.code !== undefined) Object.assign(err, { code: shape.code })
    if (shape.statusCode !== undefined) Object.assign(err, { statusCode: shape.statusCode })
  }
  if (shape.stack !== undefined) err.stack = shape.stack // where it was thrown, in the store's thread
  return err
}

/** The store's options without `thread`: what the store in the thread is made with. */
export type SqliteThreadOptions = Omit<SqliteStoreOptions, 'thread'>

export class SqliteThreadStore implements LabelStore {
  readonly path: string
  readonly #options: SqliteThreadOptions
  readonly #module: string
  readonly #events = new EventEmitter()
  readonly #waiting = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>()
  #worker: Worker | null = null
  /** Held in this (the host's) thread: a lock taken inside the worker would count as this thread's alone. */
  #lock: SqliteProcessLock | null = null
  /** Why the thread stopped, when it stopped on its own: every later call fails with it. */
  #died: Error | null = null
  #opening: Promise<void> | null = null
  #closing: Promise<void> | null = null
  #next = 0
  #outbox: Array<[number, Method, unknown[]]> = []
  #scheduled = false

  /** `options` were checked by the store in this thread already (sqliteStore builds one first). */
  constructor (options: SqliteThreadOptions) {
    this.path = options.path
    this.#options = options
    // The store's module beside this one. Run from the TypeScript sources (the tests), the thread
    // loads the built one (`npm test` builds first): a thread started from code gets no .ts loader.
    this.#module = import.meta.url.endsWith('.ts')
      ? new URL('../../dist/lib/stores/sqlite.js', import.meta.url).href
      : new URL('./sqlite.js', import.meta.url).href
    this.#events.setMaxListeners(0)
  }

  open (): Promise<void> {
    this.#opening ??= this.#open().finally(() => { this.#opening = null })
    return this.#opening
  }

  async #open (): Promise<void> {
    if (this.#worker !== null) return
    if (this.#died !== null) throw this.#died // its leases died with it: only a new process starts clean
    const lock = this.path === ':memory:' ? null : SqliteProcessLock.acquire(this.path)
    const worker = new Worker(WORKER, { eval: true, workerData: { module: this.#module, options: this.#options, methods: METHODS } })
    worker.unref() // held (ref) only while a call waits, so an idle store never keeps the process up
    worker.on('message', (batch: Reply[]) => { this.#settle(batch) })
    worker.on('error', (err) => { this.#stopped(worker, err) })
    worker.on('exit', (code) => { this.#stopped(worker, new Error(`the SQLite store's thread exited (code ${code})`)) })
    this.#worker = worker
    this.#lock = lock
    try {
      await this.#call('open', [])
    } catch (err) {
      this.#worker = null
      this.#lock = null
      lock?.release()
      this.#died = null
      await worker.terminate()
      throw err
    }
  }

  /**
   * The thread stopped on its own (a crash in it): every waiting call fails, and so does every
   * later one, with the cause. No new thread is started: the leases of live writers were in the
   * old one, and a store without them would treat those writers' labels as forgotten. The file's
   * lock stays held until close(), so no other process takes the file over while writers here
   * still believe they hold leases.
   */
  #stopped (worker: Worker, cause: Error): void {
    if (this.#worker !== worker) return
    this.#worker = null
    this.#died = new Error(`the SQLite store's thread stopped (${cause.message}); restart the process`)
    this.#died.cause = cause
    this.#rejectAll(this.#died)
  }

  #rejectAll (err: Error): void {
    const waiting = [...this.#waiting.values()]
    this.#waiting.clear()
    for (const w of waiting) w.reject(err)
  }

  #settle (batch: Reply[]): void {
    for (const [id, kind, payload] of batch) {
      if (kind === 2) {
        this.#events.emit('doom', payload as string[])
        continue
      }
      const w = this.#take(id)
      if (kind === 0) w?.resolve(payload)
      else w?.reject(revive(payload as ErrorShape))
    }
  }

  /** The call's waiter, no longer waiting; the thread stops holding the process once none is. */
  #take (id: number): { resolve: (value: unknown) => void, reject: (err: Error) => void } | undefined {
    const w = this.#waiting.get(id)
    this.#waiting.delete(id)
    if (this.#waiting.size === 0) this.#worker?.unref()
    return w
  }

  #call<T> (method: Method, args: unknown[]): Promise<T> {
    const worker = this.#worker
    if (worker === null) return Promise.reject(this.#died ?? new errors.FST_CUSTOMER_DATA_CLOSED())
    return new Promise<T>((resolve, reject) => {
      const id = ++this.#next
      this.#waiting.set(id, { resolve: resolve as (value: unknown) => void, reject })
      worker.ref()
      this.#outbox.push([id, method, args])
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(() => { this.#flush() }) // the calls of one turn go to the thread as one message
      }
    })
  }

  #flush (): void {
    this.#scheduled = false
    const calls = this.#outbox
    this.#outbox = []
    const worker = this.#worker
    if (worker === null) {
      for (const [id] of calls) this.#fail(id, this.#died ?? new errors.FST_CUSTOMER_DATA_CLOSED())
      return
    }
    for (const [id, method] of this.#post(worker, calls)) {
      this.#fail(id, new TypeError(`a ${method} call's arguments cannot be passed to the SQLite store's thread (they must be plain data)`))
    }
  }

  /** Posts the calls; returns those that cannot be copied to the thread (each is then tried alone). */
  #post (worker: Worker, calls: Array<[number, Method, unknown[]]>): Array<[number, Method, unknown[]]> {
    try {
      worker.postMessage(calls)
      return []
    } catch {
      return calls.filter((call) => {
        try {
          worker.postMessage([call])
          return false
        } catch {
          return true
        }
      })
    }
  }

  #fail (id: number, err: Error): void {
    this.#take(id)?.reject(err)
  }

  /** Closes once: callers that come while it closes wait for the same close. */
  close (): Promise<void> {
    this.#closing ??= this.#close().finally(() => { this.#closing = null })
    return this.#closing
  }

  async #close (): Promise<void> {
    await this.#opening?.catch(() => {})
    const worker = this.#worker
    const lock = this.#lock
    this.#lock = null
    try {
      if (worker !== null) await this.#call('close', [])
    } finally {
      this.#worker = null
      this.#died = null
      // Calls the thread never answered were never run: they are refused, not lost.
      this.#rejectAll(new errors.FST_CUSTOMER_DATA_CLOSED())
      this.#events.removeAllListeners()
      lock?.release()
      await worker?.terminate()
    }
  }

  async secret (): Promise<Buffer> {
    const bytes = await this.#call<Uint8Array>('secret', [])
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) // a Buffer arrives as a plain Uint8Array
  }

  label (labels: readonly LabelInput[]): Promise<void> { return this.#call('label', [labels]) }
  renew (leaseIds: readonly string[], expiresAt: number): Promise<string[]> { return this.#call('renew', [leaseIds, expiresAt]) }
  commit (leaseId: string, now: number, replace?: boolean): Promise<CommitResult> { return this.#call('commit', [leaseId, now, replace]) }
  withdraw (input: WithdrawInput): Promise<number> { return this.#call('withdraw', [input]) }
  dropLease (leaseId: string, erased: boolean): Promise<DeletionRef[]> { return this.#call('dropLease', [leaseId, erased]) }
  requestDeletion (input: RequestDeletionInput): Promise<{ deletion: DeletionRecord, created: boolean }> { return this.#call('requestDeletion', [input]) }
  claimBatch (deletionId: string, options: ClaimOptions): Promise<ClaimedLabel[]> { return this.#call('claimBatch', [deletionId, options]) }
  completeBatch (deletionId: string, keys: readonly string[], erased: Record<string, number>): Promise<void> { return this.#call('completeBatch', [deletionId, keys, erased]) }
  finishDeletion (deletionId: string, now: number): Promise<DeletionRecord | null> { return this.#call('finishDeletion', [deletionId, now]) }
  getDeletion (instance: string, deletionId: string): Promise<DeletionRecord | null> { return this.#call('getDeletion', [instance, deletionId]) }
  runningDeletions (limit: number): Promise<DeletionRef[]> { return this.#call('runningDeletions', [limit]) }
  exportLabels (instance: string, customer: string, limit: number, cursor: string | null): Promise<ExportPage> { return this.#call('exportLabels', [instance, customer, limit, cursor]) }
  compact (): Promise<void> { return this.#call('compact', []) }
  listDeletions (instance: string, options: ListDeletionsOptions): Promise<DeletionPage> { return this.#call('listDeletions', [instance, options]) }
  deletionProgress (instance: string, deletionId: string, now: number): Promise<DeletionProgress | null> { return this.#call('deletionProgress', [instance, deletionId, now]) }
  noteDeletionAttempt (deletionId: string, failure: DeletionFailureInput | null): Promise<void> { return this.#call('noteDeletionAttempt', [deletionId, failure]) }
  runningSummary (): Promise<RunningSummary> { return this.#call('runningSummary', []) }

  onDoom (listener: (leaseIds: string[]) => void): () => void {
    this.#events.on('doom', listener)
    return () => { this.#events.off('doom', listener) }
  }
}
