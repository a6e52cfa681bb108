// The §6 invariants through the plugins, as a host uses them (memory store).
import { test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import customerData, { apiKeyInstances, memoryStore, errors } from '../index.js'
import { basic, buildApp, type TestApp } from './helpers/app.js'

const H1 = { authorization: basic('key-one') }
const H2 = { authorization: basic('key-two') }
const meta = (id: string) => ({ 'x-watson-metadata': `customer_id=${id}` })

/** Host routes: imperative (store wrapper), declarative (route config) and a background job. */
function hostRoutes (t: TestApp): void {
  const { app, storage } = t
  app.post('/words/:word', async (request, reply) => {
    const { word } = request.params as { word: string }
    const instance = request.customerIds.length > 0 ? await request.customerData.instance() : 'anon'
    await request.customerData.store('word', word, async () => { storage.set(`${instance}/word/${word}`, 'w') })
    return reply.code(201).send({})
  })
  app.post('/corpora/:name', {
    config: { customerData: { kind: 'corpus', id: (request) => (request.params as { name: string }).name } }
  }, async (request, reply) => {
    const { name } = request.params as { name: string }
    if (name === 'bad') return reply.code(400).send({ error: 'bad corpus' })
    const instance = request.customerIds.length > 0 ? await request.customerData.instance() : 'anon'
    storage.set(`${instance}/corpus/${name}`, 'c')
    return reply.code(201).send({})
  })
}

async function setup (t: { teardown: (fn: () => unknown) => void }, options = {}): Promise<TestApp> {
  const built = await buildApp(options)
  hostRoutes(built)
  await built.app.ready()
  t.teardown(() => built.app.close())
  return built
}

test('complete: imperative, declarative and long-lived labels are all erased', async (t) => {
  const ctx = await setup(t)
  const { app, storage } = ctx
  t.equal((await app.inject({ method: 'POST', url: '/words/hello', headers: { ...H1, ...meta('alice') } })).statusCode, 201)
  t.equal((await app.inject({ method: 'POST', url: '/corpora/c1', headers: { ...H1, ...meta('alice') } })).statusCode, 201)
  // A background job holds its lease open and renews it.
  const job = await app.customerData.label('instance-1', ['alice'], 'job', 'job-1')
  job.keepAlive()
  storage.set('instance-1/job/job-1', 'partial')
  t.same([...storage.keys()].sort(), ['instance-1/corpus/c1', 'instance-1/job/job-1', 'instance-1/word/hello'])

  const exported = await app.inject({ url: '/v1/user_data?customer_id=alice', headers: H1 })
  t.same(exported.json().resources.map((r: { kind: string, id: string }) => `${r.kind}/${r.id}`), ['word/hello', 'corpus/c1', 'job/job-1'])

  const del = app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=alice', headers: H1 })
  await new Promise((resolve) => job.signal.addEventListener('abort', resolve))
  t.ok(job.signal.aborted, 'the long-lived lease is aborted by the deletion')
  await t.rejects(job.commit(), errors.FST_CUSTOMER_DATA_LEASE_DOOMED, 'commit after doom throws the coded error')
  const res = await del
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.equal(body.status, 'completed')
  t.same(body.erased, { word: 1, corpus: 1, job: 1 })
  t.equal(storage.size, 0, 'nothing of the customer remains')
  t.same((await app.inject({ url: '/v1/user_data?customer_id=alice', headers: H1 })).json().resources, [])
  const status = await app.inject({ url: `/v1/user_data/deletions/${body.deletion_id}`, headers: H1 })
  const { deletion_id: deletionId, status: state, erased } = status.json()
  t.same({ deletion_id: deletionId, status: state, erased }, body, 'the status route answers what DELETE did, and adds progress')
})

test('isolated: the same customer ID in another instance, and other customers, are untouched', async (t) => {
  const { app, storage } = await setup(t)
  await app.inject({ method: 'POST', url: '/words/a', headers: { ...H1, ...meta('alice') } })
  await app.inject({ method: 'POST', url: '/words/b', headers: { ...H2, ...meta('alice') } })
  await app.inject({ method: 'POST', url: '/words/c', headers: { ...H1, ...meta('bob') } })
  await app.inject({ method: 'POST', url: '/words/d', headers: H1 }) // no customer: not labeled
  const res = await app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=alice', headers: H1 })
  t.same(res.json().erased, { word: 1 })
  t.same([...storage.keys()].sort(), ['anon/word/d', 'instance-2/word/b', 'instance-1/word/c'].sort())
  const other = await app.inject({ url: `/v1/user_data/deletions/${res.json().deletion_id}`, headers: H2 })
  t.equal(other.statusCode, 404, "another instance's deletion id is a 404")
  t.equal(other.json().code_description, 'No Such Resource')
})

test('a resource labeled with two customers is erased by either deletion', async (t) => {
  const { app, storage } = await setup(t)
  await app.inject({ method: 'POST', url: '/words/shared', headers: { ...H1, 'x-watson-metadata': 'customer_id=a;customer_id=b' } })
  const res = await app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=b', headers: H1 })
  t.same(res.json().erased, { word: 1 })
  t.equal(storage.size, 0)
})

test('idempotent: concurrent identical DELETEs join one deletion; a repeat is harmless', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const ctx = await setup(t, { eraserTimeoutMs: 5000 })
  await ctx.app.inject({ method: 'POST', url: '/words/w', headers: { ...H1, ...meta('alice') } })
  const slow = ctx.app.customerData.engine
  t.ok(slow)
  const job = await ctx.app.customerData.label('instance-1', ['alice'], 'job', 'held')
  const responses = await Promise.all(Array.from({ length: 5 }, () =>
    ctx.app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=alice', headers: H1 }).then((r) => { release(); return r })))
  await gate
  const ids = new Set(responses.map((r) => r.json().deletion_id))
  t.equal(ids.size, 1, 'one deletion id for concurrent requests')
  await t.rejects(job.commit(), errors.FST_CUSTOMER_DATA_LEASE_DOOMED)
  const again = await ctx.app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=alice', headers: H1 })
  t.equal(again.statusCode, 200)
  t.same(again.json().erased, {}, 'a repeat after completion erases nothing more')
})

test('a declarative route that fails leaves its label for a later deletion', async (t) => {
  const { app, store } = await setup(t)
  const bad = await app.inject({ method: 'POST', url: '/corpora/bad', headers: { ...H1, ...meta('alice') } })
  t.equal(bad.statusCode, 400)
  const exported = await app.inject({ url: '/v1/user_data?customer_id=alice', headers: H1 })
  t.same(exported.json().resources.map((r: { id: string }) => r.id), ['bad'], 'kept: the handler may have stored part of it')
  const res = await app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=alice', headers: H1 })
  t.equal(res.statusCode, 200)
  t.same(res.json().erased, { corpus: 1 })
  t.same(await store.runningDeletions(10), [])
})

test('a declarative route whose handler calls reply.callNotFound() releases its label: a deletion erases it at once', async (t) => {
  // callNotFound switches the request to the 404 route, whose config has no customerData: the
  // label must still be ended by the route that took it, not left open until its lease expires.
  const fresh = await buildApp({ leaseMs: 60_000, waitMs: 1000 })
  fresh.app.post('/vanish/:name', {
    config: { customerData: { kind: 'audio', id: (request) => (request.params as { name: string }).name } }
  }, async (request, reply) => {
    fresh.storage.set(`instance-1/audio/${(request.params as { name: string }).name}`, 'part')
    reply.callNotFound()
    return reply
  })
  await fresh.app.ready()
  t.teardown(() => fresh.app.close())
  t.equal((await fresh.app.inject({ method: 'POST', url: '/vanish/v1', headers: { ...H1, ...meta('alice') } })).statusCode, 404)
  const res = await fresh.app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=alice', headers: H1 })
  t.equal(res.json().status, 'completed', 'the released label is erased without waiting for its lease: ' + res.body)
  t.same(res.json().erased, { audio: 1 })
  t.equal(fresh.storage.size, 0)
})

test('a deletion during a declarative request makes it a Watson 409 and erases what it stored', async (t) => {
  let entered: () => void = () => {}
  const inHandler = new Promise<void>((resolve) => { entered = resolve })
  let proceed: () => void = () => {}
  const gate = new Promise<void>((resolve) => { proceed = resolve })
  const fresh = await buildApp()
  fresh.app.post('/slow/:name', {
    config: { customerData: { kind: 'audio', id: (request) => (request.params as { name: string }).name } }
  }, async (_request, reply) => {
    entered()
    await gate
    fresh.storage.set('instance-1/audio/slow1', 'a')
    return reply.code(201).send({})
  })
  t.teardown(() => fresh.app.close())
  const pending = fresh.app.inject({ method: 'POST', url: '/slow/slow1', headers: { ...H1, ...meta('alice') } })
  await inHandler
  const del = await fresh.app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=alice', headers: H1 })
  proceed()
  const res = await pending
  t.equal(res.statusCode, 409)
  t.equal(res.json().code, 409)
  t.match(res.json().error, /deleted while this request was storing it/)
  t.equal(fresh.storage.size, 0, 'what the doomed request stored is gone')
  const status = await fresh.app.inject({ url: `/v1/user_data/deletions/${del.json().deletion_id}`, headers: H1 })
  t.equal(status.json().status, 'completed')
  t.same(status.json().erased, { audio: 1 })
})

test('eraser failure then recovery: 202 running, later completed with the right counts', async (t) => {
  let failing = true
  const ctx = await setup(t, { failErasers: () => failing, waitMs: 100 })
  await ctx.app.inject({ method: 'POST', url: '/words/w1', headers: { ...H1, ...meta('alice') } })
  await ctx.app.inject({ method: 'POST', url: '/words/w2', headers: { ...H1, ...meta('alice') } })
  const res = await ctx.app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=alice', headers: H1 })
  t.equal(res.statusCode, 202)
  t.equal(res.json().status, 'running')
  await sleep(150)
  t.equal((await ctx.app.inject({ url: `/v1/user_data/deletions/${res.json().deletion_id}`, headers: H1 })).json().status, 'running', 'never complete while a label remains')
  failing = false
  let status
  for (let i = 0; i < 100; i++) {
    status = (await ctx.app.inject({ url: `/v1/user_data/deletions/${res.json().deletion_id}`, headers: H1 })).json()
    if (status.status === 'completed') break
    await sleep(20)
  }
  t.match(status, { deletion_id: res.json().deletion_id, status: 'completed', erased: { word: 2 } })
  t.same(status.erased, { word: 2 })
  t.equal(ctx.storage.size, 0)
})

test('an eraser that hangs is bounded by eraserTimeoutMs and retried', async (t) => {
  let calls = 0
  const app = Fastify()
  const stored = new Set(['x'])
  await app.register(customerData, {
    instance: apiKeyInstances({ keys: { k: 'i' } }),
    store: memoryStore(),
    eraserTimeoutMs: 30,
    retryMinMs: 5,
    waitMs: 2000,
    erasers: {
      audio: async (ids, { signal }) => {
        calls++
        if (calls === 1) {
          await new Promise((resolve) => signal.addEventListener('abort', resolve)) // hangs until aborted
          return
        }
        for (const id of ids) stored.delete(id)
      }
    }
  })
  t.teardown(() => app.close())
  const lease = await app.customerData.label('i', ['c'], 'audio', 'x')
  await lease.commit()
  const rec = await app.customerData.requestDeletion('i', 'c')
  t.equal(rec.status, 'completed')
  t.equal(calls, 2, 'the hung call timed out and the retry succeeded')
  t.equal(stored.size, 0)
})

test('labeling rules: unknown kinds, bad ids, no instance, no customer', async (t) => {
  const { app } = await setup(t)
  await t.rejects(app.customerData.label('instance-1', ['a'], 'nope', 'x'), errors.FST_CUSTOMER_DATA_NO_ERASER)
  await t.rejects(app.customerData.label('instance-1', ['a'], 'word', ''), errors.FST_CUSTOMER_DATA_INVALID_RESOURCE)
  const unlabeled = await app.customerData.label('instance-1', [], 'word', 'x')
  t.equal(unlabeled.labeled, false)
  await unlabeled.commit()
  const noAuth = await app.inject({ method: 'POST', url: '/corpora/c', headers: meta('alice') })
  t.equal(noAuth.statusCode, 401)
  t.equal(noAuth.json().code, 401)
  const lease = await app.customerData.label('instance-1', ['a'], 'word', 'y')
  await lease.cancel()
  t.same((await app.customerData.exportLabels('instance-1', 'a')).items, [], 'cancel withdraws the label')
  await t.rejects(lease.commit(), /already been committed or cancelled/)
})

test('startup errors: no instance resolver, a declarative kind without an eraser', async (t) => {
  const noInstance = Fastify()
  noInstance.register(customerData, { store: memoryStore(), erasers: {} } as never)
  await t.rejects(async () => { await noInstance.ready() }, /instance is required/)

  const noEraser = Fastify()
  await noEraser.register(customerData, { store: memoryStore(), erasers: { word: async () => {} }, instance: () => 'i' })
  t.throws(() => noEraser.post('/x', { config: { customerData: { kind: 'grammar', id: () => 'g' } } }, async () => ({})),
    errors.FST_CUSTOMER_DATA_NO_ERASER)
  t.throws(() => noEraser.post('/y', { config: { customerData: { kind: 'word' } as never } }, async () => ({})),
    errors.FST_CUSTOMER_DATA_INVALID_OPTION)
  await noEraser.close()

  for (const bad of [{ leaseMs: -1 }, { batchSize: 'x' }, { secret: 'short' }, { erasers: { 'bad kind!': async () => {} } }, { erasers: { a: 1 } }, { store: {} }, { waitMs: -5 }]) {
    const app = Fastify()
    app.register(customerData, { store: memoryStore(), erasers: {}, instance: () => 'i', ...bad } as never)
    await t.rejects(async () => { await app.ready() }, errors.FST_CUSTOMER_DATA_INVALID_OPTION, JSON.stringify(bad))
  }
})
