// A fleet of example servers: two real processes on one PostgreSQL database, each with its own
// DATA_DIR, as replicas on two machines. What customer X stored through B is erased by a deletion
// requested through A — in both APIs, both DATA_DIRs and every live row of the database.
import { test, type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { pgSkipReason } from './helpers/pg.js'
import { createDatabase, liveRows } from './helpers/pg-database.js'
import { killExample, startExample, type ExampleProcess } from './helpers/example-process.js'
import {
  AUTH, KEY, api, callbackServer, customer, dataDirBytes, findIn, served, storeEverything, textMarkers, type Customer, type Stored
} from './helpers/example-customers.js'

const skip = await pgSkipReason()

/** A live WebSocket recognition session of `c`, started and sending audio. */
async function liveSession (t: Test, base: string, c: Customer) {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/recognize?x-watson-metadata=${encodeURIComponent(`customer_id=${c.id}`)}`, { headers: AUTH })
  const messages: Array<Record<string, unknown>> = []
  const closed = new Promise<number>((resolve) => ws.on('close', resolve))
  ws.on('message', (m) => messages.push(JSON.parse(m.toString())))
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject) })
  ws.send(JSON.stringify({ action: 'start', 'content-type': 'audio/wav' }))
  ws.send(c.audio)
  for (let i = 0; i < 200 && messages.length === 0; i++) await sleep(10)
  t.same(messages[0], { state: 'listening' }, `${c.id}: a live session on B`)
  return { messages, closed }
}

async function fleet (t: Test) {
  const db = await createDatabase()
  const dirs = [mkdtempSync(join(tmpdir(), 'fcd-replica-a-')), mkdtempSync(join(tmpdir(), 'fcd-replica-b-'))]
  const children: ExampleProcess[] = []
  t.teardown(async () => {
    for (const c of children) {
      c.proc.kill('SIGCONT')
      await killExample(c)
    }
    await db.drop()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })
  const start = async (dir: string): Promise<ExampleProcess> => {
    const child = await startExample({ DATABASE_URL: db.url, DATA_DIR: dir, STT_API_KEYS: `${KEY}:fleet-instance` })
    children.push(child)
    return child
  }
  const [a, b] = [await start(dirs[0]), await start(dirs[1])]
  return { db, dirs, a, b }
}

/** A and B, and through B: everything of X (and a live session of X), and everything of Y. */
async function fleetWithData (t: Test) {
  const setup = await fleet(t)
  const callbackUrl = await callbackServer(t)
  const x = customer('xavier', 440)
  const y = customer('yvonne', 660)
  const xs = await storeEverything(t, setup.b.url, x, callbackUrl)
  const ys = await storeEverything(t, setup.b.url, y, callbackUrl + '?y')
  const session = await liveSession(t, setup.b.url, x)
  return { setup, x, xs, y, ys, session }
}

async function checkErased (t: Test, setup: { db: { url: string }, dirs: string[], a: ExampleProcess | null, b: ExampleProcess }, x: Customer, xs: Stored, y: Customer, ys: Stored): Promise<void> {
  for (const [name, replica] of [['A', setup.a], ['B', setup.b]] as const) {
    if (replica === null) continue
    t.same(await served(replica.url, x, xs), [], `nothing of X in replica ${name}'s API`)
    t.same(await served(replica.url, y, ys), ['corpus', 'word', 'grammar', 'acoustic audio', 'job', '7 labeled resources'], `Y is intact through replica ${name}`)
  }
  for (const [i, dir] of setup.dirs.entries()) {
    const bytes = dataDirBytes(dir)
    t.same(findIn(bytes, x), [], `nothing of X in ${i === 0 ? 'A' : 'B'}'s DATA_DIR (${bytes.length} bytes searched)`)
    t.same(findIn(bytes, y), [], `nor of Y: a fleet keeps no customer's bytes in DATA_DIR (${i === 0 ? 'A' : 'B'})`)
  }
  const rows = await liveRows(setup.db.url)
  t.same(findIn(rows, x), [], "nothing of X in the database's live rows")
  t.same(findIn(rows, y).sort(), [...textMarkers(y).filter((m) => m !== y.id), 'audio bytes'].sort(),
    "Y's bytes are all in the database (the search finds what is there; customer IDs are kept only as digests)")
}

test('a deletion through replica A erases what X stored through replica B', { skip }, async (t) => {
  const { setup, x, xs, y, ys, session } = await fleetWithData(t)
  const { a } = setup
  t.same(findIn(await liveRows(setup.db.url), x).sort(), [...textMarkers(x).filter((m) => m !== x.id), 'audio bytes'].sort(),
    "before: X's bytes are all in the database")

  const del = await api(a.url, `/v1/user_data?customer_id=${x.id}`, { method: 'DELETE' })
  t.equal(del.status, 200, 'A answers: completed')
  t.match(del.body, { status: 'completed', erased: { corpus: 1, word: 1, grammar: 1, audio: 1, recognition: 2, job: 1, callback: 1 } })
  t.equal(await session.closed, 1011, "X's live session on B was closed with 1011")
  t.match(session.messages.at(-1), { error: /deleted during this session/ }, 'after an error frame')
  await checkErased(t, setup, x, xs, y, ys)
})

test('A is SIGKILLed while its deletion runs; B finishes it', { skip }, async (t) => {
  const { setup, x, xs, y, ys, session } = await fleetWithData(t)
  const { a, b } = setup
  // B stops (as a replica stalls): the deletion A records cannot finish while B's session holds its lease.
  b.proc.kill('SIGSTOP')
  const del = await api(a.url, `/v1/user_data?customer_id=${x.id}`, { method: 'DELETE' })
  t.equal(del.status, 202, 'A answers: running')
  t.equal((await api(a.url, `/v1/user_data/deletions/${del.body.deletion_id}`)).body.status, 'running')
  await killExample(a)
  t.equal(a.proc.signalCode, 'SIGKILL', 'A was killed mid-deletion')
  b.proc.kill('SIGCONT')
  t.equal(await session.closed, 1011, "B, resumed, closes X's session with 1011")
  let rec = (await api(b.url, `/v1/user_data/deletions/${del.body.deletion_id}`)).body
  for (let i = 0; i < 1200 && rec.status !== 'completed'; i++) {
    await sleep(100)
    rec = (await api(b.url, `/v1/user_data/deletions/${del.body.deletion_id}`)).body
  }
  t.match(rec, { status: 'completed', erased: { corpus: 1, word: 1, grammar: 1, audio: 1, recognition: 2, job: 1, callback: 1 } }, 'B completed the deletion A started')
  await checkErased(t, { ...setup, a: null }, x, xs, y, ys)
})
