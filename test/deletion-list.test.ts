// GET /v1/user_data/deletions and the progress every deletion carries: what operators see of a
// deletion, and why it is stuck. Also the events the engine publishes on app.customerData.
import { test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { memoryStore } from '../index.js'
import { flakyStore } from './helpers/flaky-store.js'
import { basic, buildApp } from './helpers/app.js'

const H1 = { authorization: basic('key-one') }
const H2 = { authorization: basic('key-two') }
const SECRET_IDS = ['customer-alpha-7', 'customer-bravo-7', 'customer-charlie-7', 'customer-delta-7', 'customer-other-7']

interface Switch { failing: boolean }

/** Erasers that work, except `job` while the switch says it fails. */
function erasers (jobs: Switch): Record<string, (ids: string[]) => Promise<void>> {
  return {
    audio: async () => {},
    word: async () => {},
    job: async () => { if (jobs.failing) throw new Error('job archive is read-only') }
  }
}

async function labelCommitted (app: FastifyInstance, instance: string, customer: string, kind: string, id: string): Promise<void> {
  await (await app.customerData.label(instance, [customer], kind, id)).commit()
}

async function until<T> (fn: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const value = await fn()
    if (ok(value)) return value
    await sleep(20)
  }
  throw new Error('timed out waiting for ' + what)
}

test('the list: newest first, status filter, paging, another instance invisible, no customer ID', async (t) => {
  const jobs = { failing: true }
  const { app } = await buildApp({ erasers: erasers(jobs), waitMs: 300 })
  t.teardown(() => app.close())
  const ids: string[] = []
  for (const [n, kind] of [[0, 'audio'], [1, 'job'], [2, 'word']] as const) {
    await labelCommitted(app, 'instance-1', SECRET_IDS[n], kind, `r${n}`)
    const res = await app.inject({ method: 'DELETE', url: `/v1/user_data?customer_id=${SECRET_IDS[n]}`, headers: H1 })
    t.equal(res.statusCode, kind === 'job' ? 202 : 200, `${kind}: ${kind === 'job' ? 'stuck' : 'completed'}`)
    t.same(Object.keys(res.json()).sort(), ['deletion_id', 'erased', 'status'], 'DELETE answers as before')
    ids.push(res.json().deletion_id)
    await sleep(3) // distinct creation times
  }
  await labelCommitted(app, 'instance-2', SECRET_IDS[4], 'audio', 'x')
  const other = (await app.inject({ method: 'DELETE', url: `/v1/user_data?customer_id=${SECRET_IDS[4]}`, headers: H2 })).json().deletion_id

  const all = await app.inject({ url: '/v1/user_data/deletions', headers: H1 })
  t.equal(all.statusCode, 200)
  t.same(all.json().deletions.map((d: { deletion_id: string }) => d.deletion_id), [ids[2], ids[1], ids[0]], 'newest first')
  t.equal(all.json().next_cursor, null)
  for (const secret of SECRET_IDS) t.notOk(all.body.includes(secret), 'no customer ID in the list')
  const done = all.json().deletions[0]
  t.equal(done.status, 'completed')
  t.same(done.erased, { word: 1 })
  t.ok(Date.parse(done.completed_at) >= Date.parse(done.created_at))
  t.same(done.progress, { remaining_labels: 0, waiting_on_writers: 0, attempts: 0, failures: {} })

  const running = (await app.inject({ url: '/v1/user_data/deletions?status=running', headers: H1 })).json()
  t.same(running.deletions.map((d: { deletion_id: string }) => d.deletion_id), [ids[1]])
  t.equal(running.deletions[0].completed_at, null)
  const completed = (await app.inject({ url: '/v1/user_data/deletions?status=completed', headers: H1 })).json()
  t.same(completed.deletions.map((d: { deletion_id: string }) => d.deletion_id), [ids[2], ids[0]])

  const paged: string[] = []
  let cursor: string | null = null
  do {
    const url: string = '/v1/user_data/deletions?limit=1' + (cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`)
    const page = (await app.inject({ url, headers: H1 })).json()
    t.equal(page.deletions.length, 1)
    paged.push(page.deletions[0].deletion_id)
    cursor = page.next_cursor
  } while (cursor !== null && paged.length < 10)
  t.same(paged, [ids[2], ids[1], ids[0]], 'one page at a time, each once')

  const mine2 = (await app.inject({ url: '/v1/user_data/deletions', headers: H2 })).json()
  t.same(mine2.deletions.map((d: { deletion_id: string }) => d.deletion_id), [other], 'instance 2 sees only its own')
  t.equal((await app.inject({ url: `/v1/user_data/deletions/${ids[1]}`, headers: H2 })).statusCode, 404, "another instance's deletion is a 404")
  jobs.failing = false
})

test('bad list queries are Watson 400s; no credentials a 401', async (t) => {
  const { app } = await buildApp()
  t.teardown(() => app.close())
  for (const [query, message] of [['status=stuck', /status/], ['limit=0', /limit/], ['limit=101', /limit/], ['cursor=nope', /cursor/]] as const) {
    const res = await app.inject({ url: `/v1/user_data/deletions?${query}`, headers: H1 })
    t.equal(res.statusCode, 400, query)
    t.equal(res.json().code_description, 'Bad Request')
    t.match(res.json().error, message)
  }
  const anon = await app.inject({ url: '/v1/user_data/deletions' })
  t.equal(anon.statusCode, 401)
  t.equal(anon.json().code, 401)
})

test("a stuck deletion shows its eraser's error and next retry, until it completes", async (t) => {
  const jobs = { failing: true }
  const { app } = await buildApp({ erasers: erasers(jobs), waitMs: 100, retryMinMs: 200, retryMaxMs: 400 })
  t.teardown(() => app.close())
  await labelCommitted(app, 'instance-1', SECRET_IDS[0], 'job', 'j1')
  await labelCommitted(app, 'instance-1', SECRET_IDS[0], 'audio', 'a1')
  const res = await app.inject({ method: 'DELETE', url: `/v1/user_data?customer_id=${SECRET_IDS[0]}`, headers: H1 })
  t.equal(res.statusCode, 202)
  const id = res.json().deletion_id
  const url = `/v1/user_data/deletions/${id}`

  const stuck = await until(async () => (await app.inject({ url, headers: H1 })).json(), (d) => d.progress.attempts >= 2, 'two failed attempts')
  t.equal(stuck.status, 'running')
  t.equal(stuck.progress.remaining_labels, 2, 'both labels still to erase')
  t.equal(stuck.progress.waiting_on_writers, 0)
  t.same(Object.keys(stuck.progress.failures), ['job'], 'the failing kind')
  const failure = stuck.progress.failures.job
  t.equal(failure.error, 'job archive is read-only', "the eraser's own message")
  t.ok(Date.parse(failure.next_retry_at) > Date.parse(failure.failed_at), 'the next retry comes after the failure')
  t.ok(Date.parse(failure.next_retry_at) - Date.parse(failure.failed_at) <= 400, 'within the backoff cap')
  const listed = (await app.inject({ url: '/v1/user_data/deletions?status=running', headers: H1 })).json().deletions[0]
  t.same(listed.progress.failures.job.error, 'job archive is read-only', 'the list carries the same progress')

  jobs.failing = false
  const done = await until(async () => (await app.inject({ url, headers: H1 })).json(), (d) => d.status === 'completed', 'completion')
  t.same(done.erased, { job: 1, audio: 1 })
  t.same(done.progress, { remaining_labels: 0, waiting_on_writers: 0, attempts: 0, failures: {} })
})

test('labels waiting on a live writer are counted until the writer ends', async (t) => {
  const { app } = await buildApp({ waitMs: 50 })
  t.teardown(() => app.close())
  const lease = await app.customerData.label('instance-1', [SECRET_IDS[3]], 'audio', 'live')
  const res = await app.inject({ method: 'DELETE', url: `/v1/user_data?customer_id=${SECRET_IDS[3]}`, headers: H1 })
  t.equal(res.statusCode, 202)
  const url = `/v1/user_data/deletions/${res.json().deletion_id}`
  const waiting = (await app.inject({ url, headers: H1 })).json()
  t.equal(waiting.progress.remaining_labels, 1)
  t.equal(waiting.progress.waiting_on_writers, 1, 'the writer still holds its lease')
  await t.rejects(lease.commit(), /deleted while this request was storing it/)
  const done = await until(async () => (await app.inject({ url, headers: H1 })).json(), (d) => d.status === 'completed', 'completion')
  t.same(done.erased, { audio: 1 })
})

test('events on app.customerData tell a deletion from record to completion, without customer IDs', async (t) => {
  const jobs = { failing: true }
  const { app } = await buildApp({ erasers: erasers(jobs), waitMs: 0, retryMinMs: 20, retryMaxMs: 40 })
  t.teardown(() => app.close())
  const seen: Array<[string, Record<string, unknown>]> = []
  const names = ['labels-written', 'lease-doomed', 'deletion-recorded', 'batch-erased', 'eraser-failed', 'deletion-completed'] as const
  for (const name of names) app.customerData.on(name, (payload) => { seen.push([name, payload as unknown as Record<string, unknown>]) })
  const throwing = (): void => { throw new Error('a listener bug') }
  app.customerData.on('batch-erased', throwing)

  await labelCommitted(app, 'instance-1', SECRET_IDS[1], 'job', 'j1')
  const live = await app.customerData.label('instance-1', [SECRET_IDS[1], SECRET_IDS[2]], 'audio', 'a1')
  const deletion = await app.customerData.requestDeletion('instance-1', SECRET_IDS[1], { waitMs: 0 })
  await until(async () => seen.filter(([n]) => n === 'eraser-failed').length, (n) => n >= 1, 'an eraser failure')
  jobs.failing = false
  await t.rejects(live.commit())
  await until(async () => (await app.customerData.getDeletion('instance-1', deletion.id))?.status, (s) => s === 'completed', 'completion')
  await until(async () => seen.some(([n]) => n === 'deletion-completed'), Boolean, 'the completed event')
  app.customerData.off('batch-erased', throwing)

  t.same(seen.filter(([n]) => n === 'labels-written').map(([, p]) => p), [
    { instance: 'instance-1', kind: 'job', count: 1 },
    { instance: 'instance-1', kind: 'audio', count: 2 }
  ], 'one event per label request, counting a label per customer')
  t.same(seen.find(([n]) => n === 'lease-doomed')?.[1], { instance: 'instance-1', leaseId: live.id })
  t.match(seen.find(([n]) => n === 'deletion-recorded')?.[1], { deletionId: deletion.id, instance: 'instance-1', created: true, createdAt: Number })
  t.match(seen.find(([n]) => n === 'eraser-failed')?.[1], { deletionId: deletion.id, kind: 'job', error: 'job archive is read-only', attempt: 1, nextRetryAt: Number })
  t.same(seen.filter(([n]) => n === 'batch-erased').map(([, p]) => p.erased), [{ job: 1 }], 'the batch the reaper erased (the writer erased its own)')
  t.match(seen.find(([n]) => n === 'deletion-completed')?.[1], { deletionId: deletion.id, erased: { job: 1, audio: 1 }, completedAt: Number })
  const text = JSON.stringify(seen)
  for (const secret of SECRET_IDS) t.notOk(text.includes(secret), 'no customer ID in any event')
})

test('a store that is down: the list and the status route answer 503 with Retry-After', async (t) => {
  const flaky = flakyStore(memoryStore(), (method) => method === 'listDeletions' || method === 'deletionProgress')
  const { app } = await buildApp({ store: flaky.store })
  t.teardown(() => app.close())
  const id = (await app.customerData.requestDeletion('instance-1', SECRET_IDS[0])).id
  flaky.down = true
  for (const url of ['/v1/user_data/deletions', `/v1/user_data/deletions/${id}`]) {
    const res = await app.inject({ url, headers: H1 })
    t.equal(res.statusCode, 503, url)
    t.equal(res.headers['retry-after'], '5')
    t.equal(res.json().code, 503)
    t.notMatch(res.body, /connection refused/, 'the driver error stays in the server')
  }
  flaky.down = false
  t.equal((await app.inject({ url: '/v1/user_data/deletions', headers: H1 })).statusCode, 200)
})

test('a run that takes a deletion over clears the failures a previous replica noted, once it erases', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  let calls = 0
  const erasers = { audio: async () => { if (++calls === 2) await gate } }
  const { app, store } = await buildApp({ erasers, batchSize: 1, reaperMs: 60_000, waitMs: 100 })
  t.teardown(() => app.close())
  await labelCommitted(app, 'instance-1', SECRET_IDS[2], 'audio', 'a1')
  await labelCommitted(app, 'instance-1', SECRET_IDS[2], 'audio', 'a2')
  // What a replica that died while its eraser failed leaves on the record.
  const { deletion } = await store.requestDeletion({ id: 'left-by-replica-a', instance: 'instance-1', customer: app.customerData.engine.digest(SECRET_IDS[2]), now: Date.now() })
  await store.noteDeletionAttempt(deletion.id, { kind: 'audio', error: 'disk offline on replica A', failedAt: Date.now(), nextRetryAt: Date.now() + 1000 })
  const url = `/v1/user_data/deletions/${deletion.id}`
  t.equal((await app.inject({ url, headers: H1 })).json().progress.attempts, 1)

  const res = await app.inject({ method: 'DELETE', url: `/v1/user_data?customer_id=${SECRET_IDS[2]}`, headers: H1 })
  t.equal(res.json().deletion_id, deletion.id, 'this process joins and runs it')
  t.equal(res.statusCode, 202, 'the second batch is still erasing')
  const running = await until(async () => (await app.inject({ url, headers: H1 })).json(), (d) => d.progress.attempts === 0, 'the old failure cleared')
  t.equal(running.status, 'running')
  t.same(running.progress.failures, {}, 'no stale error while it makes progress')
  t.equal(running.progress.remaining_labels, 1)
  release()
  const done = await until(async () => (await app.inject({ url, headers: H1 })).json(), (d) => d.status === 'completed', 'completion')
  t.same(done.erased, { audio: 2 })
})
