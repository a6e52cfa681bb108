// The cost of a label at the store level (issue 12's harness): 32 label → commit pairs in flight,
// a new customer each, on a store prefilled with committed labels. Prints labels/s, this
// process's CPU per label (main thread and all threads) and, for PostgreSQL, the CPU per label of
// the backends serving the store's pool.
//   node dist/bench/store-cost.js --store sqlite|postgres [--prefill 1000000] [--seconds 15]
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { postgresStore, sqliteStore, POSTGRES_SESSION_OPTIONS, type LabelStore } from 'fastify-customer-data'
import { backendDelta, backendMicros, mainThreadMicros, processMicros } from './cpu.js'
import { loadLabels } from './load-labels.js'
import { vacuumSchema } from './vacuum.js'

const IN_FLIGHT = 32

export interface StoreCost { labelsPerSecond: number, mainMicros: number, processMicros: number, dbMicros: number | null }

/** Runs the harness on a fresh store; `prefill` labels are loaded first (100 per customer). */
export async function storeCost (kind: 'sqlite' | 'postgres', prefill: number, seconds: number, url: string): Promise<StoreCost> {
  const app = 'fcd-cost-' + randomBytes(4).toString('hex')
  const schema = 'fcd_cost_' + randomBytes(4).toString('hex')
  const dir = mkdtempSync(join(tmpdir(), 'fcd-cost-'))
  // The pool never closes idle connections, so every backend measured lives through the run.
  // It plans prepared statements as the pool postgresStore creates does.
  const pool = kind === 'postgres'
    ? new pg.Pool({ connectionString: url, application_name: app, max: 10, idleTimeoutMillis: 0, options: POSTGRES_SESSION_OPTIONS })
    : null
  const store: LabelStore = pool === null ? sqliteStore({ path: join(dir, 'labels.db') }) : postgresStore({ pool, schema })
  await store.open()
  try {
    await loadLabels(store, (id) => id, Math.floor(prefill / 100), 100, 'pre-')
    if (kind === 'postgres') await vacuumSchema(url, schema)
    const now = Date.now()
    let labels = 0
    const end = performance.now() + seconds * 1000
    const db0 = kind === 'postgres' ? await backendMicros(url, app) : new Map<number, number>()
    const main0 = mainThreadMicros()
    const proc0 = processMicros()
    const t0 = performance.now()
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      while (performance.now() < end) {
        const leaseId = randomUUID()
        await store.label([{ leaseId, instance: 'bench', customers: [randomBytes(16).toString('hex')], kind: 'item', id: randomUUID(), now, expiresAt: now + 60_000 }])
        await store.commit(leaseId, now)
        labels++
      }
    }))
    const elapsed = (performance.now() - t0) / 1000
    const main = mainThreadMicros() - main0
    const proc = processMicros() - proc0
    const db = kind === 'postgres' ? backendDelta(db0, await backendMicros(url, app)) : null
    return { labelsPerSecond: labels / elapsed, mainMicros: main / labels, processMicros: proc / labels, dbMicros: db === null ? null : db / labels }
  } finally {
    await store.close()
    await pool?.end()
    rmSync(dir, { recursive: true, force: true })
    if (kind === 'postgres') await dropSchema(url, schema)
  }
}

async function dropSchema (url: string, schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
  await c.end()
}

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? process.argv[i + 1] : fallback
}

if (process.argv[1]?.endsWith('store-cost.js')) {
  const kind = arg('store', 'sqlite') as 'sqlite' | 'postgres'
  const prefill = Number(arg('prefill', '1000000'))
  const t0 = performance.now()
  const r = await storeCost(kind, prefill, Number(arg('seconds', '15')), process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test')
  console.log(JSON.stringify({ store: kind, prefill, ...Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null ? null : Math.round(v * 10) / 10])), totalSeconds: Math.round((performance.now() - t0) / 1000) }))
}
