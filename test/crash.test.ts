// Durable (docs/ARCHITECTURE.md, "Deletion"): real server processes on SQLite, SIGKILLed at random moments — during a
// deletion, or while labels are being written — and restarted on the same files.
import { test, type Test } from 'tap'
import { mkdtempSync, readdirSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { kill, startChild, type Child } from './helpers/child.js'
import { PG_URL, dropSchemas, pgSkipReason, uniqueSchema } from './helpers/pg.js'

const AUTH = { authorization: 'Basic ' + Buffer.from('apikey:key-one').toString('base64') }
const CUSTOMERS = ['alice', 'bob', 'carol']

function prng (seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 4294967296
  }
}

async function post (child: Child, customer: string, name: string): Promise<boolean> {
  try {
    const res = await fetch(`${child.url}/files/${name}`, { method: 'POST', headers: { ...AUTH, 'x-watson-metadata': `customer_id=${customer}` } })
    await res.arrayBuffer()
    return res.status === 201
  } catch {
    return false // the server died first: not acknowledged
  }
}

async function finishDeletion (child: Child, customer: string): Promise<{ status: string, erased: Record<string, number> }> {
  const res = await fetch(`${child.url}/v1/user_data?customer_id=${customer}`, { method: 'DELETE', headers: AUTH })
  let body = await res.json() as { deletion_id: string, status: string, erased: Record<string, number> }
  for (let i = 0; i < 300 && body.status !== 'completed'; i++) {
    await sleep(50)
    body = await (await fetch(`${child.url}/v1/user_data/deletions/${body.deletion_id}`, { headers: AUTH })).json() as typeof body
  }
  return body
}

async function exported (child: Child, customer: string): Promise<Set<string>> {
  const ids = new Set<string>()
  let cursor: string | null = null
  do {
    const url: string = `${child.url}/v1/user_data?customer_id=${customer}&limit=1000${cursor === null ? '' : `&cursor=${cursor}`}`
    const page = await (await fetch(url, { headers: AUTH })).json() as { resources: Array<{ id: string }>, next_cursor: string | null }
    for (const r of page.resources) ids.add(r.id)
    cursor = page.next_cursor
  } while (cursor !== null)
  return ids
}

async function trial (seed: number, storeEnv: () => Record<string, string>): Promise<string | null> {
  const rand = prng(seed)
  const dir = mkdtempSync(join(tmpdir(), 'fcd-crash-'))
  const env = { DB_PATH: join(dir, 'labels.db'), ...storeEnv(), FILES_DIR: join(dir, 'files'), LEASE_MS: '400', ERASE_DELAY_MS: '15', BATCH_SIZE: '4', ERASER_TIMEOUT_MS: '300' }
  const acked = new Map<string, Set<string>>(CUSTOMERS.map((c) => [c, new Set()]))
  const mode = seed % 2 === 0 ? 'during deletion' : 'during label writes'
  let first: Child | null = await startChild(env)
  let second: Child | null = null
  try {
    let n = 0
    const write = async (customer: string): Promise<void> => {
      const name = `${customer}-${n++}`
      if (await post(first as Child, customer, name)) acked.get(customer)?.add(name)
    }
    if (mode === 'during deletion') {
      for (let round = 0; round < 8; round++) await Promise.all(CUSTOMERS.map(write))
      const deletion = fetch(`${first.url}/v1/user_data?customer_id=alice`, { method: 'DELETE', headers: AUTH }).catch(() => null)
      await sleep(rand() * 60)
      await kill(first)
      await deletion
    } else {
      const writes = Array.from({ length: 60 }, (_, i) => sleep(rand() * 30).then(() => write(CUSTOMERS[i % 3])))
      await sleep(rand() * 40)
      await kill(first)
      await Promise.all(writes)
    }
    first = null
    second = await startChild(env)
    const done = await finishDeletion(second, 'alice')
    if (done.status !== 'completed') return `${mode}: the deletion did not complete after restart`
    const left = existsSync(join(env.FILES_DIR, 'instance-1', 'audio')) ? readdirSync(join(env.FILES_DIR, 'instance-1', 'audio')) : []
    const alices = left.filter((f) => f.startsWith('alice-'))
    if (alices.length > 0) return `${mode}: files of the deleted customer remain: ${alices.join(', ')}`
    for (const customer of ['bob', 'carol']) {
      const labels = await exported(second, customer)
      for (const name of acked.get(customer) as Set<string>) {
        if (!left.includes(name)) return `${mode}: acknowledged file ${name} of ${customer} was lost`
        if (!labels.has(name)) return `${mode}: acknowledged label ${name} of ${customer} was lost`
      }
    }
    return null
  } finally {
    if (first !== null) await kill(first)
    if (second !== null) await kill(second)
    rmSync(dir, { recursive: true, force: true })
  }
}

async function trials (t: Test, storeEnv: () => Record<string, string>, count: number): Promise<void> {
  const base = Number(process.env.CRASH_SEED ?? Date.now() % 100000)
  const n = Number(process.env.CRASH_TRIALS ?? count)
  t.comment(`crash seed ${base} (rerun with CRASH_SEED=${base})`)
  for (let seed = base; seed < base + n; seed++) {
    const problem = await trial(seed, storeEnv)
    t.equal(problem, null, `trial seed ${seed}${problem === null ? '' : ` (rerun with CRASH_SEED=${seed} CRASH_TRIALS=1)`}`)
  }
}

test('SQLite: SIGKILL during deletions and label writes; restart finishes the work, nothing acknowledged is lost', async (t) => {
  await trials(t, () => ({}), 20)
})

test('SQLite in its own thread (thread: true): the same crash trials', async (t) => {
  await trials(t, () => ({ SQLITE_THREAD: '1' }), 10)
})

const pgSkip = await pgSkipReason()
test('PostgreSQL: the same crash trials', { skip: pgSkip }, async (t) => {
  const schemas: string[] = []
  t.teardown(() => dropSchemas(schemas))
  await trials(t, () => {
    const schema = uniqueSchema()
    schemas.push(schema)
    return { DATABASE_URL: PG_URL, PG_SCHEMA: schema }
  }, 10)
})
