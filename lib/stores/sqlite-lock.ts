// One process per SQLite file (docs/ARCHITECTURE.md, "Stores"): deletion batch claims live in the
// memory of the process that opened the store, so a second process on the same file could erase
// a batch another is erasing and count it twice, or finish a deletion while the other still works.
// A lock file beside the database, created exclusively and holding the owner's pid, refuses the
// second process; a lock left by a process that died is taken over. The lock file stays open while
// held, so another thread of this process (a host running stores in its own worker threads) sees
// it among the process's open files and is refused too.
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, unlinkSync, writeSync } from 'node:fs'
import { resolve } from 'node:path'
import { FST_CUSTOMER_DATA_INVALID_OPTION } from '../errors.js'

/** Lock files this thread holds, by path (a thread's own; other threads show in /proc/self/fd). */
const held = new Set<string>()

export class SqliteProcessLock {
  readonly path: string
  /** Kept open while held: what another thread of this process finds in /proc/self/fd. */
  readonly #fd: number

  private constructor (path: string, fd: number) {
    this.path = path
    this.#fd = fd
  }

  /** Takes the lock of the database at `dbPath`, or throws naming the process that holds it. */
  static acquire (dbPath: string): SqliteProcessLock {
    const path = resolve(dbPath) + '.lock'
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o600)
        try {
          writeSync(fd, String(process.pid))
        } catch (err) {
          closeSync(fd)
          throw err
        }
        held.add(path)
        return new SqliteProcessLock(path, fd)
      } catch (err) {
        if ((err as { code?: string }).code !== 'EEXIST') throw err
      }
      const owner = readOwner(path)
      if (owner !== null && isAlive(owner, path)) {
        throw new FST_CUSTOMER_DATA_INVALID_OPTION(
          `${dbPath} is already open in ${owner === process.pid ? 'another sqliteStore of this process' : `process ${owner}`} (lock file ${path}). ` +
          'A SQLite store serves one process only; use postgresStore to share labels between several processes.')
      }
      try { unlinkSync(path) } catch {} // stale: its owner died without closing the store
    }
    throw new FST_CUSTOMER_DATA_INVALID_OPTION(`could not take the lock file ${path} of ${dbPath}`)
  }

  release (): void {
    held.delete(this.path)
    // Removed while still open, so no other thread of this process finds it unheld and takes it first.
    if (readOwner(this.path) === process.pid) {
      try { unlinkSync(this.path) } catch {}
    }
    try { closeSync(this.#fd) } catch {}
  }
}

function readOwner (path: string): number | null {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim())
    return Number.isInteger(pid) && pid > 0 ? pid : null
  } catch {
    return null
  }
}

function isAlive (pid: number, path: string): boolean {
  // Our own pid: held by this thread, or by another thread of this process (the file is open in
  // it), or else left by an earlier life of this pid (a container's pid 1) and stale.
  if (pid === process.pid) return held.has(path) || openInThisProcess(path)
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM' // alive, but another user's
  }
}

/** Whether any thread of this process has the file open (Linux: /proc/self/fd; elsewhere unknown, so no). */
function openInThisProcess (path: string): boolean {
  let real: string
  let fds: string[]
  try {
    real = realpathSync(path)
    fds = readdirSync('/proc/self/fd')
  } catch {
    return false
  }
  return fds.some((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === real
    } catch {
      return false
    }
  })
}
