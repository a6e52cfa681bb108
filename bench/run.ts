// npm run bench [-- --quick]: what labeling and deletion cost, each figure beside bare Fastify
// measured in the same run. Servers run in child processes; load comes from this process.
import autocannon from 'autocannon'
import WebSocket from 'ws'
import pg from 'pg'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { CustomerDataEngine, postgresStore, sqliteStore, type LabelStore } from 'fastify-customer-data'
import { loadLabels } from './load-labels.js'
import { backendDelta, backendMicros, procCpuMicros } from './cpu.js'
import { vacuumSchema } from './vacuum.js'

const quick = process.argv.includes('--quick')
/** `--deletions`: only the deletion modes (each loads a store of its own first). */
const deletionsOnly = process.argv.includes('--deletions')
const CFG = quick
  ? { duration: 2, rounds: 1, connections: 32, wsSeconds: 2, storeLabels: 100_000, bigCustomer: 20_000, deletions: 20 }
  : { duration: 8, rounds: 3, connections: 64, wsSeconds: 5, storeLabels: 1_000_000, bigCustomer: 100_000, deletions: 50 }
/** The deletion goals of issue 12's acceptance. */
const DELETE_P50_MS = 10
const BIG_DELETE_MS = 1000
const MAX_STALL_MS = 20
const PG_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
const SERVER = join(dirname(fileURLToPath(import.meta.url)), 'server.js')
const AUTH = 'Basic ' + Buffer.from('apikey:bench-key').toString('base64')
const dir = mkdtempSync(join(tmpdir(), 'fcd-bench-'))
const schemas: string[] = []

interface Server { proc: ChildProcess, port: number }

function start (env: Record<string, string>): Promise<Server> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [SERVER], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    proc.stdout?.on('data', (c) => {
      out += c
      const m = /listening (\d+)/.exec(out)
      if (m !== null) resolve({ proc, port: Number(m[1]) })
    })
    proc.on('exit', (code) => { reject(new Error(`bench server exited ${code}`)) })
  })
}

/** Peak resident memory of the child, from the kernel (VmHWM). */
function peakRss (s: Server): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${s.proc.pid as number}/status`, 'utf8'))
  return m === null ? 0 : Number(m[1]) * 1024
}

async function stop (s: Server): Promise<void> {
  s.proc.removeAllListeners('exit')
  const exited = new Promise((resolve) => s.proc.once('exit', resolve))
  s.proc.kill('SIGTERM')
  await exited
}

async function pgReachable (): Promise<boolean> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 })
  try { await c.connect(); return true } catch { return false } finally { await c.end().catch(() => {}) }
}

function storeEnv (store: string): Record<string, string> {
  if (store === 'sqlite' || store === 'sqlite-thread') return { STORE: store, DB_PATH: join(dir, `${randomBytes(4).toString('hex')}.db`) }
  if (store === 'postgres') {
    const schema = 'fcd_bench_' + randomBytes(4).toString('hex')
    schemas.push(schema)
    // application_name marks the server's backends, whose CPU the benchmark reads from /proc.
    return { STORE: 'postgres', DATABASE_URL: `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}application_name=${schema}`, PG_SCHEMA: schema }
  }
  return { STORE: 'memory' }
}

interface HttpFigures {
  rps: number
  p50: number
  p99: number
  rss: number
  /** The server's main thread, µs of CPU per request. */
  mainCpu: number
  /** The whole server process (all threads), µs per request. */
  processCpu: number
  /** The PostgreSQL backends serving the server, µs per request; 0 for other stores. */
  dbCpu: number
}

/** One autocannon run against a fresh server. `customer`: none, 'new' (one per request) or a fixed ID. */
async function http (env: Record<string, string>, customer: 'none' | 'new' | string): Promise<HttpFigures> {
  const server = await start(env)
  let n = 0
  // Every mode, the bare baseline included, builds each request the same way, so the load
  // generator's own cost is equal on both sides of a ratio.
  const header = customer === 'none' ? 'x-request-tag' : 'x-watson-metadata'
  const value = (): string => `customer_id=${customer === 'new' || customer === 'none' ? `c${++n}-${process.pid}` : customer}`
  const pid = server.proc.pid as number
  const main0 = procCpuMicros(`/proc/${pid}/task/${pid}/stat`)
  const proc0 = procCpuMicros(`/proc/${pid}/stat`)
  const db0 = env.PG_SCHEMA === undefined ? null : await backendMicros(PG_URL, env.PG_SCHEMA)
  const result = await autocannon({
    url: `http://127.0.0.1:${server.port}`,
    connections: CFG.connections,
    duration: CFG.duration,
    requests: [{
      method: 'POST',
      path: '/r',
      headers: { authorization: AUTH, 'content-type': 'application/json' },
      body: '{}',
      // autocannon applies setupRequest per request only inside `requests`
      setupRequest: (req: { headers?: Record<string, string> }) => ({ ...req, headers: { ...req.headers, [header]: value() } })
    }]
  } as autocannon.Options)
  const main = procCpuMicros(`/proc/${pid}/task/${pid}/stat`) - main0
  const proc = procCpuMicros(`/proc/${pid}/stat`) - proc0
  const db = db0 === null ? 0 : backendDelta(db0, await backendMicros(PG_URL, env.PG_SCHEMA))
  const total = Math.max(1, result.requests.total)
  const rss = peakRss(server)
  await stop(server)
  if (result.non2xx > 0 || result.errors > 0) console.error(`  warning: ${result.non2xx} non-2xx, ${result.errors} errors`)
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, rss, mainCpu: main / total, processCpu: proc / total, dbCpu: db / total }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = (x: number, d = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
const range = (xs: number[], d = 0): string => xs.length > 1 ? ` (${fmt(Math.min(...xs), d)}–${fmt(Math.max(...xs), d)})` : ''
const rows: string[][] = []

/**
 * A goal for a labeled mode: the req/s ratio to bare, or, where a shared machine makes req/s
 * meaningless, the CPU a labeled request adds (main thread) or costs the database.
 */
interface HttpGoal { ratio: number, addedMainCpu?: number, dbCpu?: number }

async function httpMode (name: string, env: Record<string, string>, customer: 'none' | 'new' | string, goal?: HttpGoal): Promise<void> {
  const base: HttpFigures[] = []
  const mode: HttpFigures[] = []
  for (let r = 0; r < CFG.rounds; r++) { // interleaved with its baseline, so drift hits both
    base.push(await http({ MODE: 'bare' }, 'none'))
    mode.push(await http(env, customer))
  }
  const ratios = mode.map((m, i) => m.rps / base[i].rps)
  const added = median(mode.map((m, i) => m.mainCpu - base[i].mainCpu))
  const db = median(mode.map((m) => m.dbCpu))
  const ratio = median(ratios)
  let verdict = ''
  if (goal !== undefined) {
    const parts = [`≥ ${fmt(goal.ratio, 2)}×`]
    if (goal.addedMainCpu !== undefined) parts.push(`or +≤ ${goal.addedMainCpu} µs main`)
    if (goal.dbCpu !== undefined) parts.push(`or ≤ ${goal.dbCpu} µs DB`)
    const met = ratio >= goal.ratio || (goal.addedMainCpu !== undefined && added <= goal.addedMainCpu) || (goal.dbCpu !== undefined && db <= goal.dbCpu)
    verdict = `${parts.join(' ')}${met ? '' : ' — MISSED'}`
  }
  rows.push([name, `${fmt(median(mode.map((m) => m.rps)))}${range(mode.map((m) => m.rps))}`, `${fmt(median(base.map((b) => b.rps)))}`,
    `${fmt(ratio, 2)}×${range(ratios, 2)}`,
    `${fmt(median(mode.map((m) => m.mainCpu)), 1)} / ${fmt(median(mode.map((m) => m.processCpu)), 1)} (${added < 0 ? '−' : '+'}${fmt(Math.abs(added), 1)})`,
    db > 0 ? fmt(db, 1) : '',
    `${fmt(median(mode.map((m) => m.p50)))} / ${fmt(median(mode.map((m) => m.p99)))}`,
    `${fmt(median(mode.map((m) => m.rss)) / 2 ** 20)} MB (${fmt(median(mode.map((m, i) => m.rss / base[i].rss)), 2)}×)`, verdict])
  console.error(`  measured: ${name}`)
}

/** WebSocket upgrades per second: open, wait for the server's first message, close; 16 at a time. */
async function upgrades (port: number, query: string): Promise<number> {
  let count = 0
  const end = Date.now() + CFG.wsSeconds * 1000
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (Date.now() < end) {
      await new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ws${query}`, { headers: { authorization: AUTH } })
        ws.once('message', () => { count++; ws.close(); resolve() })
        ws.once('error', reject)
      })
    }
  }))
  return count / CFG.wsSeconds
}

/** 4 KiB binary frames through one session as fast as the socket takes them; frames/s the server counted. */
async function frames (port: number, query: string): Promise<number> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws${query}`, { headers: { authorization: AUTH } })
  const messages: Array<Record<string, number>> = []
  let wake: (() => void) | null = null
  ws.on('message', (m) => { messages.push(JSON.parse(m.toString())); wake?.() })
  const next = async (): Promise<Record<string, number>> => {
    while (messages.length === 0) await new Promise<void>((resolve) => { wake = resolve })
    return messages.shift() as Record<string, number>
  }
  await next() // ready
  const frame = randomBytes(4096)
  const started = Date.now()
  while (Date.now() - started < CFG.wsSeconds * 1000) {
    if (ws.bufferedAmount > 1 << 20) await new Promise((resolve) => setImmediate(resolve))
    else ws.send(frame)
  }
  ws.send('count')
  const { frames: n } = await next()
  const seconds = (Date.now() - started) / 1000
  ws.close()
  return n / seconds
}

async function websocketModes (): Promise<void> {
  const bare = await start({ MODE: 'ws-bare' })
  const labeled = await start({ MODE: 'ws-labeled', ...storeEnv('sqlite') })
  const meta = '?x-watson-metadata=customer_id%3Dbench'
  const u0 = await upgrades(bare.port, '')
  const u1 = await upgrades(labeled.port, '')
  const u2 = await upgrades(labeled.port, meta)
  const f0 = await frames(bare.port, '')
  const f1 = await frames(labeled.port, meta)
  await stop(bare)
  await stop(labeled)
  rows.push(['WS upgrades/s, bare', fmt(u0), fmt(u0), '1.00×', '', '', '', '', ''])
  rows.push(['WS upgrades/s, plugins, no metadata', fmt(u1), fmt(u0), `${fmt(u1 / u0, 2)}×`, '', '', '', '', ''])
  rows.push(['WS upgrades/s, metadata + label (SQLite)', fmt(u2), fmt(u0), `${fmt(u2 / u0, 2)}×`, '', '', '', '', ''])
  rows.push(['WS 4 KiB frames/s, labeled session', fmt(f1), fmt(f0), `${fmt(f1 / f0, 2)}×`, '', '', '', '', 'no work per frame'])
}

async function deletionModes (store: 'sqlite' | 'postgres'): Promise<void> {
  const env = storeEnv(store)
  const make = (): LabelStore => store === 'sqlite' ? sqliteStore({ path: env.DB_PATH, synchronous: 'FULL' }) : postgresStore({ connectionString: PG_URL, schema: env.PG_SCHEMA })
  const engine = new CustomerDataEngine({ store: make(), erasers: { item: async () => {} }, reaperMs: 1e9 })
  await engine.start()
  const digest = (id: string): string => engine.digest(id)
  const customers = Math.floor((CFG.storeLabels - CFG.bigCustomer) / 100)
  const maintenance = store === 'postgres' ? async () => { await vacuumSchema(PG_URL, env.PG_SCHEMA) } : undefined
  const perSecond = await loadLabels(engine.store, digest, customers, 100, 'c', maintenance)
  await loadLabels(engine.store, digest, 1, CFG.bigCustomer, 'big', maintenance)
  await engine.close()
  rows.push([`load ${fmt(CFG.storeLabels)} labels (${store})`, `${fmt(perSecond)} labels/s`, '', '', '', '', '', '', ''])

  const server = await start({ MODE: 'label', ...env })
  const times: number[] = []
  for (let i = 0; i < CFG.deletions; i++) {
    const t0 = performance.now()
    const res = await fetch(`http://127.0.0.1:${server.port}/v1/user_data?customer_id=c${i * 7}`, { method: 'DELETE', headers: { authorization: AUTH } })
    const body = await res.json() as { erased: Record<string, number> }
    times.push(performance.now() - t0)
    if (body.erased.item !== 100) console.error(`  warning: erased ${JSON.stringify(body.erased)}`)
  }
  const sorted = [...times].sort((a, b) => a - b)
  const p50 = sorted[Math.floor(sorted.length / 2)]
  rows.push([`DELETE 100-resource customer in ${fmt(CFG.storeLabels)} labels (${store})`, `p50 ${fmt(p50, 1)} ms, p99 ${fmt(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))], 1)} ms`, '', '', '', '', '', '',
    `≤ ${DELETE_P50_MS} ms p50${p50 <= DELETE_P50_MS ? '' : ' — MISSED'}`])
  await fetch(`http://127.0.0.1:${server.port}/stats`)
  const t0 = performance.now()
  const big = await (await fetch(`http://127.0.0.1:${server.port}/v1/user_data?customer_id=big0`, { method: 'DELETE', headers: { authorization: AUTH } })).json() as { status: string, erased: Record<string, number> }
  const total = performance.now() - t0
  const { maxStallMs } = await (await fetch(`http://127.0.0.1:${server.port}/stats`)).json() as { maxStallMs: number }
  await stop(server)
  const bigMet = total <= BIG_DELETE_MS && maxStallMs <= MAX_STALL_MS && big.status === 'completed'
  rows.push([`DELETE ${fmt(CFG.bigCustomer)}-resource customer (${store})`, `${fmt(total)} ms (${big.status}, ${fmt(big.erased.item ?? 0)} erased), longest stall ${fmt(maxStallMs, 1)} ms`, '', '', '', '', '', '',
    `≤ ${BIG_DELETE_MS / 1000} s, stall ≤ ${MAX_STALL_MS} ms${bigMet ? '' : ' — MISSED'}`])
}

const hasPg = await pgReachable()
console.error(`fastify-customer-data benchmark${quick ? ' (quick)' : ''}: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${fmt(totalmem() / 2 ** 30)} GiB, Node ${process.version}${hasPg ? '' : ' — PostgreSQL unreachable: its modes are skipped'}`)
try {
  if (!deletionsOnly) await httpModes()
  await deletionModes('sqlite')
  if (hasPg) await deletionModes('postgres')
} finally {
  rmSync(dir, { recursive: true, force: true })
  if (schemas.length > 0) {
    const c = new pg.Client({ connectionString: PG_URL })
    await c.connect()
    for (const s of schemas) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`)
    await c.end()
  }
}

async function httpModes (): Promise<void> {
  await httpMode('POST, bare Fastify (the baseline, against itself)', { MODE: 'bare' }, 'none')
  await httpMode('POST, plugins registered, no header', { MODE: 'plugins' }, 'none', { ratio: 0.97 })
  await httpMode('POST, header parsed only', { MODE: 'plugins' }, 'bench', { ratio: 0.97 })
  await httpMode('POST, labeled route, a store that keeps nothing (the floor)', { MODE: 'label', STORE: 'floor' }, 'new')
  await httpMode('POST, new label, new customer (memory)', { MODE: 'label', ...storeEnv('memory') }, 'new')
  await httpMode('POST, new label, new customer (SQLite)', { MODE: 'label', ...storeEnv('sqlite') }, 'new', { ratio: 0.80, addedMainCpu: 15 })
  await httpMode('POST, new label, one busy customer (SQLite)', { MODE: 'label', ...storeEnv('sqlite') }, 'busy')
  await httpMode('POST, new label, new customer (SQLite, thread: true)', { MODE: 'label', ...storeEnv('sqlite-thread') }, 'new', { ratio: 0.80, addedMainCpu: 15 })
  await httpMode('POST, new label, one busy customer (SQLite, thread: true)', { MODE: 'label', ...storeEnv('sqlite-thread') }, 'busy')
  if (hasPg) {
    await httpMode('POST, new label, new customer (PostgreSQL)', { MODE: 'label', ...storeEnv('postgres') }, 'new', { ratio: 0.70, dbCpu: 40 })
    await httpMode('POST, new label, one busy customer (PostgreSQL)', { MODE: 'label', ...storeEnv('postgres') }, 'busy')
  }
  await websocketModes()
}

const header = ['mode', 'req/s or result (median, min–max)', 'bare req/s', 'ratio to bare', 'server CPU µs/req: main / process (+main vs bare)', 'DB CPU µs/req', 'p50 / p99 ms', 'peak RSS', 'goal']
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
const line = (cells: string[]): string => '| ' + cells.map((c, i) => (c ?? '').padEnd(widths[i])).join(' | ') + ' |'
console.log(line(header))
console.log('|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|')
for (const r of rows) console.log(line(r))
