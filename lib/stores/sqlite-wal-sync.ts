// Durability without blocking the event loop. With synchronous FULL, SQLite fsyncs the WAL inside
// every commit, and better-sqlite3 runs commits on the main thread, so each group transaction
// stalled every request for the length of an fsync. Instead the connection runs with NORMAL (a
// commit only write()s its frames to the WAL) and this class fsyncs the WAL file on libuv's
// thread pool; whoever wrote before an fsync started is durable when it ends.
//
// Why that is enough: in WAL mode with NORMAL, SQLite syncs the WAL before each checkpoint and
// the database after it, so a frame is either still in the WAL (covered by our fsync) or already
// in a synced database file. The WAL file keeps its inode while the connection is open (a
// TRUNCATE checkpoint shrinks it in place), so one descriptor serves for the store's lifetime.
import { closeSync, fsync, fsyncSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import { FST_CUSTOMER_DATA_CLOSED } from '../errors.js'

export class WalSync {
  readonly #fd: number
  /** Waiting for the next fsync: they committed after the one in flight (if any) started. */
  #waiting: Array<{ resolve: () => void, reject: (err: Error) => void }> = []
  #inFlight: Promise<void> | null = null
  #closed = false

  private constructor (fd: number) {
    this.#fd = fd
  }

  /** Opens the WAL of an open WAL-mode database and makes its existence durable. */
  static open (databasePath: string): WalSync {
    const fd = openSync(`${databasePath}-wal`, 'r')
    fsyncSync(fd)
    syncDirectory(dirname(databasePath))
    return new WalSync(fd)
  }

  /** Resolves when everything committed before this call is on disk. */
  sync (): Promise<void> {
    if (this.#closed) return Promise.reject(new FST_CUSTOMER_DATA_CLOSED())
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject })
      if (this.#inFlight === null) this.#start()
    })
  }

  #start (): void {
    const batch = this.#waiting
    this.#waiting = []
    this.#inFlight = new Promise<void>((resolve) => {
      fsync(this.#fd, (err) => {
        this.#inFlight = null
        for (const w of batch) {
          if (err === null) w.resolve()
          else w.reject(err)
        }
        if (this.#waiting.length > 0) this.#start()
        resolve()
      })
    })
  }

  /** Waits for the fsync in flight, then closes the descriptor. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    while (this.#inFlight !== null) await this.#inFlight
    closeSync(this.#fd)
  }
}

function syncDirectory (dir: string): void {
  let fd: number | undefined
  try {
    fd = openSync(dir, 'r')
    fsyncSync(fd)
  } catch {
    // Some platforms cannot open or fsync a directory; the file's own fsync is what they offer.
  } finally {
    if (fd !== undefined) closeSync(fd)
  }
}
