// WAL checkpoints on a worker thread. better-sqlite3 is synchronous, so a checkpoint run on the
// main connection stalls the event loop for as long as it copies pages; a second connection in a
// worker copies them while requests go on.
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import { pathToFileURL } from 'node:url'

// Only dynamic import() here: code a thread evaluates runs as an ES module when the host was
// started with --input-type=module, and as CommonJS otherwise; import() works in both (require,
// which this used, failed silently in ES-module hosts, and the WAL was never checkpointed).
const WORKER = `
import('node:worker_threads').then(async ({ parentPort, workerData }) => {
  const { default: Database } = await import(workerData.module)
  const db = new Database(workerData.path)
  db.pragma('busy_timeout = 5000')
  parentPort.on('message', ({ id, mode }) => {
    try {
      db.pragma('wal_checkpoint(' + mode + ')')
      parentPort.postMessage({ id, ok: true })
    } catch (err) {
      parentPort.postMessage({ id, ok: false, error: String(err && err.message) })
    }
  })
})
`

export type CheckpointMode = 'PASSIVE' | 'TRUNCATE'

export class Checkpointer {
  readonly #worker: Worker
  readonly #pending = new Map<number, { resolve: () => void, reject: (err: Error) => void }>()
  #next = 0
  #busy = false

  constructor (path: string) {
    const module = pathToFileURL(createRequire(import.meta.url).resolve('better-sqlite3')).href
    this.#worker = new Worker(WORKER, { eval: true, workerData: { path, module } })
    this.#worker.unref()
    this.#worker.on('message', ({ id, ok, error }: { id: number, ok: boolean, error?: string }) => {
      const p = this.#pending.get(id)
      this.#pending.delete(id)
      if (ok) p?.resolve()
      else p?.reject(new Error(`WAL checkpoint failed: ${error ?? 'unknown error'}`))
    })
    this.#worker.on('error', (err) => {
      for (const p of this.#pending.values()) p.reject(err)
      this.#pending.clear()
    })
  }

  checkpoint (mode: CheckpointMode): Promise<void> {
    return new Promise((resolve, reject) => {
      const id = ++this.#next
      this.#pending.set(id, { resolve, reject })
      this.#worker.postMessage({ id, mode })
    })
  }

  /** A PASSIVE checkpoint unless one is already running; never waits, never throws. */
  nudge (): void {
    if (this.#busy) return
    this.#busy = true
    this.checkpoint('PASSIVE').catch(() => {}).finally(() => { this.#busy = false })
  }

  async close (): Promise<void> {
    await this.#worker.terminate()
  }
}
