// CPU time from the kernel, for cost per request: this process's main thread, and the PostgreSQL
// backends that serve a pool (found by application_name, read from /proc/<pid>/stat).
import { readFileSync } from 'node:fs'
import pg from 'pg'

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_SECOND = 100

/** utime + stime of a process or thread, in µs; 0 if it is gone or unreadable. */
export function procCpuMicros (path: string): number {
  try {
    const stat = readFileSync(path, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * (1e6 / TICKS_PER_SECOND)
  } catch {
    return 0
  }
}

/** The main thread's CPU (µs): the event loop's share, without worker threads and the thread pool. */
export function mainThreadMicros (): number {
  return procCpuMicros(`/proc/self/task/${process.pid}/stat`)
}

/** The whole process's CPU (µs), all threads. */
export function processMicros (): number {
  const u = process.cpuUsage()
  return u.user + u.system
}

/** CPU (µs) of each backend whose connection carries this application_name, by pid. */
export async function backendMicros (url: string, applicationName: string): Promise<Map<number, number>> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  try {
    const { rows } = await c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [applicationName])
    return new Map(rows.map((r) => [r.pid, procCpuMicros(`/proc/${r.pid}/stat`)]))
  } finally {
    await c.end()
  }
}

/**
 * The CPU the backends spent between two snapshots. A backend that appeared meanwhile counts in
 * full; one that ended meanwhile is lost, so the pools measured never close idle connections.
 */
export function backendDelta (before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0
  for (const [pid, micros] of after) sum += micros - (before.get(pid) ?? 0)
  return sum
}
