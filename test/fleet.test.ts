// A fleet: two server processes on one PostgreSQL database (docs/ARCHITECTURE.md, "Stores").
import { test, type Test } from 'tap'
import { mkdtempSync, readdirSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { kill, startChild, type Child } from './helpers/child.js'
import { PG_URL, dropSchemas, pgSkipReason, uniqueSchema } from './helpers/pg.js'

const skip = await pgSkipReason()
const AUTH = { authorization: 'Basic ' + Buffer.from('apikey:key-one').toString('base64') }

async function status (child: Child, id: string): Promise<{ status: string, erased: Record<string, number> }> {
  return await (await fetch(`${child.url}/v1/user_data/deletions/${id}`, { headers: AUTH })).json() as { status: string, erased: Record<string, number> }
}

async function fleet (t: Test, extra: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'fcd-fleet-'))
  const schema = uniqueSchema()
  const env = { DATABASE_URL: PG_URL, PG_SCHEMA: schema, FILES_DIR: join(dir, 'files'), LEASE_MS: '3000', ERASER_TIMEOUT_MS: '300', ...extra }
  const children: Child[] = []
  const start = async (more: Record<string, string> = {}): Promise<Child> => {
    const child = await startChild({ ...env, ...more })
    children.push(child)
    return child
  }
  t.teardown(async () => {
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) await kill(c)
    await dropSchemas([schema])
    rmSync(dir, { recursive: true, force: true })
  })
  return { start, filesDir: join(dir, 'files', 'instance-1', 'audio') }
}

test('a lease held on B aborts within 1 s of a deletion requested on A', { skip }, async (t) => {
  const { start, filesDir } = await fleet(t)
  const a = await start()
  const b = await start()
  const session = fetch(`${b.url}/sessions/stream-1`, { method: 'POST', headers: { ...AUTH, 'x-watson-metadata': 'customer_id=alice' } })
  for (let i = 0; i < 100 && !existsSync(join(filesDir, 'stream-1')); i++) await sleep(20)
  t.ok(existsSync(join(filesDir, 'stream-1')), 'the session on B is writing')
  const requestedAt = Date.now()
  const del = await (await fetch(`${a.url}/v1/user_data?customer_id=alice`, { method: 'DELETE', headers: AUTH })).json() as { deletion_id: string }
  const { doomedAt } = await (await session).json() as { doomedAt: number }
  t.ok(doomedAt - requestedAt < 1000, `the lease on B aborted ${doomedAt - requestedAt} ms after the request on A`)
  let rec = await status(a, del.deletion_id)
  for (let i = 0; i < 100 && rec.status !== 'completed'; i++) { await sleep(50); rec = await status(a, del.deletion_id) }
  t.match(rec, { deletion_id: del.deletion_id, status: 'completed' }, 'the status route adds progress to these fields')
  t.same(rec.erased, { audio: 1 })
  t.notOk(existsSync(join(filesDir, 'stream-1')), "what B's session stored is erased")
})

test('a deletion started on A survives A being SIGKILLed, and B completes it', { skip }, async (t) => {
  const { start, filesDir } = await fleet(t, { BATCH_SIZE: '2' })
  const a = await start({ ERASE_DELAY_MS: '150' })
  for (let i = 0; i < 20; i++) {
    const res = await fetch(`${a.url}/files/alice-${i}`, { method: 'POST', headers: { ...AUTH, 'x-watson-metadata': 'customer_id=alice' } })
    t.equal(res.status, 201)
  }
  await fetch(`${a.url}/files/bob-0`, { method: 'POST', headers: { ...AUTH, 'x-watson-metadata': 'customer_id=bob' } })
  const res = await fetch(`${a.url}/v1/user_data?customer_id=alice`, { method: 'DELETE', headers: AUTH })
  t.equal(res.status, 202, 'recorded, still running')
  const { deletion_id: id } = await res.json() as { deletion_id: string }
  await sleep(200)
  await kill(a)
  t.ok(readdirSync(filesDir).filter((f) => f.startsWith('alice-')).length > 0, 'A died before it finished')
  const b = await start()
  let rec = await status(b, id)
  for (let i = 0; i < 300 && rec.status !== 'completed'; i++) { await sleep(50); rec = await status(b, id) }
  t.equal(rec.status, 'completed', 'B completed the deletion')
  t.same(readdirSync(filesDir), ['bob-0'], 'nothing of alice remains; bob is untouched')
})
