// npm run bench:example-words [-- --server before=/path/to/dist/examples/server.js ...]: PUT word
// throughput of the example server (SQLite, one process) with 1,000 and with 100,000 words already
// stored, and the server's CPU per request. Each --server is measured in the same run (default: this build).
import autocannon from 'autocannon'
import Database from 'better-sqlite3'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const STORED = [1_000, 100_000]
const DURATION_S = Number(process.env.BENCH_SECONDS ?? 8)
const CONNECTIONS = 16
/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these ticks. */
const CLOCK_TICKS_PER_S = 100
const KEY = 'bench-key'
const AUTH = 'Basic ' + Buffer.from(`apikey:${KEY}`).toString('base64')

interface Server { proc: ChildProcess, url: string }

function servers (): Array<[string, string]> {
  const out: Array<[string, string]> = []
  const args = process.argv.slice(2)
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== '--server') continue
    const [label, path] = args[++i].split('=')
    out.push([label, path])
  }
  return out.length > 0 ? out : [['this build', join(dirname(fileURLToPath(import.meta.url)), '..', 'examples', 'server.js')]]
}

/** A port free now (earlier builds of the example print PORT as given, so 0 would not do). */
async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

async function start (script: string, dataDir: string): Promise<Server> {
  const port = await freePort()
  return await new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [script], { env: { ...process.env, PORT: String(port), DATA_DIR: dataDir, STT_API_KEYS: `${KEY}:bench`, DATABASE_URL: '' }, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    proc.stdout?.on('data', (c) => {
      out += c
      const m = /listening on (http:\/\/\S+)/.exec(out)
      if (m !== null) resolve({ proc, url: m[1] })
    })
    proc.on('exit', (code) => { reject(new Error(`example server exited ${code}`)) })
  })
}

async function stop (s: Server): Promise<void> {
  s.proc.removeAllListeners('exit')
  const exited = new Promise((resolve) => s.proc.once('exit', resolve))
  s.proc.kill('SIGTERM')
  await exited
}

/** CPU seconds the process has used (user + system), from the kernel. */
function cpuSeconds (s: Server): number {
  const fields = readFileSync(`/proc/${s.proc.pid as number}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S // utime, stime
}

/** Adds word documents straight into documents.db (the server is stopped), whichever schema it has. */
function seedWords (dataDir: string, model: string, from: number, to: number): void {
  const db = new Database(join(dataDir, 'documents.db'))
  const hasSeq = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('documents')").all().some((c) => c.name === 'seq')
  const insert = db.prepare(hasSeq
    ? "INSERT INTO documents (instance, kind, id, doc, seq) VALUES ('bench', 'word', ?, ?, ?)"
    : "INSERT INTO documents (instance, kind, id, doc) VALUES ('bench', 'word', ?, ?)")
  let seq = hasSeq ? (db.prepare<[], { m: number }>('SELECT coalesce(max(seq), 0) AS m FROM documents').get()?.m ?? 0) : 0
  db.transaction(() => {
    for (let i = from; i < to; i++) {
      const word = `seeded${i}`
      const doc = JSON.stringify({ word, sounds_like: [], display_as: word, count: 1, source: ['user'] })
      if (hasSeq) insert.run(`${model}/${word}`, doc, ++seq)
      else insert.run(`${model}/${word}`, doc)
    }
  })()
  db.close()
}

async function measure (s: Server, model: string, labeled: boolean): Promise<{ rps: number, cpuMs: number, p99: number }> {
  let n = 0
  const tag = `${labeled ? 'l' : 'u'}${Date.now()}`
  const cpu0 = cpuSeconds(s)
  const result = await autocannon({
    url: s.url,
    connections: CONNECTIONS,
    duration: DURATION_S,
    requests: [{
      method: 'PUT',
      headers: { authorization: AUTH, 'content-type': 'application/json', ...(labeled ? { 'x-watson-metadata': 'customer_id=bench-customer' } : {}) },
      body: JSON.stringify({ sounds_like: ['bench'] }),
      setupRequest: (req) => ({ ...req, path: `/v1/customizations/${model}/words/${tag}w${n++}` })
    }]
  })
  const cpu = cpuSeconds(s) - cpu0
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`${result.non2xx} non-2xx answers, ${result.errors} errors`)
  return { rps: result.requests.average, cpuMs: cpu * 1000 / result.requests.total, p99: result.latency.p99 }
}

console.log(`PUT /v1/customizations/{id}/words/{new word}: ${CONNECTIONS} connections, ${DURATION_S} s each, SQLite example server\n`)
console.log('| server | words stored | labeled | req/s | server CPU ms/req | p99 ms |')
console.log('|---|---:|---|---:|---:|---:|')
for (const [label, script] of servers()) {
  const dataDir = mkdtempSync(join(tmpdir(), 'fcd-bench-words-'))
  try {
    let s = await start(script, dataDir)
    const created = await fetch(`${s.url}/v1/customizations`, { method: 'POST', headers: { authorization: AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bench', base_model_name: 'en-US_BroadbandModel' }) })
    const model = (await created.json() as { customization_id: string }).customization_id
    let seeded = 0
    for (const stored of STORED) {
      await stop(s)
      seedWords(dataDir, model, seeded, stored)
      seeded = stored
      s = await start(script, dataDir)
      for (const labeled of [false, true]) {
        const r = await measure(s, model, labeled)
        console.log(`| ${label} | ${stored.toLocaleString('en')} | ${labeled ? 'yes' : 'no'} | ${Math.round(r.rps)} | ${r.cpuMs.toFixed(2)} | ${r.p99} |`)
      }
    }
    await stop(s)
  } finally {
    rmSync(dataDir, { recursive: true, force: true })
  }
}
