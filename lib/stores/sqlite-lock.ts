// One process per SQLite file (docs/ARCHITECTURE.md, "Stores"): deletion batch claims live in the
// memory of the process that opened the store, so a second process on the same file could erase
// a batch another is erasing and count it twice, or finish a deletion while the other still works.
// A lock file beside the database, created exclusively and holding the owner's pid, refuses the
// second process; a lock left by a process that died is taken over.
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { resolve } from 'node:path'
import { FST_CUSTOMER_DATA_INVALID_OPTION } from '../errors.js'

/** Lock files this process holds, by path: a pid equal to ours is stale unless it is in here. */
const held = new Set<string>()

export class SqliteProcessLock {
  readonly path: string

  private constructor (path: string) {
    this.path = path
  }

  /** Takes the lock of the database at `dbPath`, or throws naming the process that holds it. */
  static acquire (dbPath: string): SqliteProcessLock {
    const path = resolve(dbPath) + '.lock'
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o600)
        try {
          writeSync(fd, String(process.pid))
        } finally {
          closeSync(fd)
        }
        held.add(path)
        return new SqliteProcessLock(path)
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
    if (readOwner(this.path) === process.pid) {
      try { unlinkSync(this.path) } catch {}
    }
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
  if (pid === process.pid) return held.has(path) // our own pid from an earlier life (a container's pid 1)
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM' // alive, but another user's
  }
}
