// Names reused after a delete (issue 14 item 1): a resource the host deleted or replaced keeps no
// label of its former owner, so that owner's deletion never erases the next owner's data.
import { test, type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import customerData, { apiKeyInstances, memoryStore, sqliteStore, type ExportPage, type LabelStore } from '../index.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { basic } from './helpers/app.js'

const AUTH = { authorization: basic('key-one') }
const as = (id: string): Record<string, string> => ({ ...AUTH, 'x-watson-metadata': `customer_id=${id}` })
const word = (request: FastifyRequest): string => (request.params as { word: string }).word

/** The host's storage: word → the customer it was stored for (or '' when unlabeled). */
async function host (t: Test, store: LabelStore): Promise<{ app: FastifyInstance, words: Map<string, string> }> {
  const words = new Map<string, string>()
  const app = Fastify()
  await app.register(customerData, {
    store,
    instance: apiKeyInstances({ keys: { 'key-one': 'instance-1' } }),
    erasers: { word: async (ids) => { for (const id of ids) words.delete(id) } },
    waitMs: 2000
  })
  const owner = (request: FastifyRequest): string => request.customerIds.join(',')
  // Declarative: store (first write), replace (overwrite), withdraw (host-side delete).
  app.post('/words/:word', { config: { customerData: { kind: 'word', id: word } } }, async (request, reply) => {
    words.set(word(request), owner(request))
    return await reply.code(201).send({})
  })
  app.put('/words/:word', { config: { customerData: { kind: 'word', id: word, replace: true } } }, async (request, reply) => {
    words.set(word(request), owner(request))
    return await reply.code(201).send({})
  })
  app.delete('/words/:word', { config: { customerData: { kind: 'word', id: word, withdraw: true } } }, async (request, reply) => {
    words.delete(word(request))
    return await reply.code(204).send()
  })
  // Hijacked: the handler answers on reply.raw, so Fastify runs no onSend for these routes.
  app.post('/hijacked/:word', { config: { customerData: { kind: 'word', id: word } } }, async (request, reply) => {
    words.set(word(request), owner(request))
    reply.hijack()
    reply.raw.writeHead(201).end()
  })
  app.delete('/hijacked/:word', { config: { customerData: { kind: 'word', id: word, withdraw: true } } }, async (request, reply) => {
    words.delete(word(request))
    reply.hijack()
    reply.raw.writeHead(204).end()
  })
  // Imperative: the host deletes, then withdraws.
  app.delete('/imperative/:word', async (request, reply) => {
    words.delete(word(request))
    await request.customerData.withdraw('word', word(request))
    return await reply.code(204).send()
  })
  await app.ready()
  t.teardown(() => app.close())
  return { app, words }
}

const committed = (page: ExportPage): boolean => page.items.length === 1 && page.items[0].state === 'committed'

/** Polls until `check` holds; fails the test after 2 s. */
async function until (check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 2000
  while (!await check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the label to be finished')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

async function deleteCustomer (app: FastifyInstance, id: string): Promise<{ status: string, erased: Record<string, number> }> {
  return (await app.inject({ method: 'DELETE', url: `/v1/user_data?customer_id=${id}`, headers: AUTH })).json()
}

function stores (t: Test): Array<[string, () => LabelStore]> {
  const dir = mkdtempSync(join(tmpdir(), 'fcd-withdraw-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  let n = 0
  return [['memory', () => memoryStore()], ['sqlite', () => sqliteStore({ path: join(dir, `labels-${n++}.db`) })]]
}

test('deleted by the host (declarative and imperative), reused by another customer: the first deletion leaves it', async (t) => {
  for (const [name, make] of stores(t)) {
    for (const route of ['/words', '/imperative']) {
      const { app, words } = await host(t, make())
      t.equal((await app.inject({ method: 'POST', url: '/words/hello', headers: as('x') })).statusCode, 201)
      t.equal((await app.inject({ method: 'DELETE', url: `${route}/hello`, headers: as('x') })).statusCode, 204)
      t.equal((await app.inject({ method: 'POST', url: '/words/hello', headers: as('y') })).statusCode, 201)
      const del = await deleteCustomer(app, 'x')
      t.match(del, { status: 'completed', erased: {} }, `${name} ${route}: nothing of x is left to erase`)
      t.equal(words.get('hello'), 'y', `${name} ${route}: y's word survives x's deletion`)
      t.match(await deleteCustomer(app, 'y'), { status: 'completed', erased: { word: 1 } }, 'y\'s own deletion still erases it')
      t.notOk(words.has('hello'))
    }
  }
})

test('hijacked replies (answered on reply.raw): the label is committed and the withdrawal done once the response is out', async (t) => {
  for (const [name, make] of stores(t)) {
    const { app, words } = await host(t, make())
    t.equal((await app.inject({ method: 'POST', url: '/hijacked/hello', headers: as('x') })).statusCode, 201)
    // The label is finished after the response: wait for it as a client cannot, by its export.
    await until(async () => committed(await app.customerData.exportLabels('instance-1', 'x')))
    t.equal((await app.inject({ method: 'DELETE', url: '/hijacked/hello', headers: as('x') })).statusCode, 204)
    await until(async () => (await app.customerData.exportLabels('instance-1', 'x')).items.length === 0)
    t.equal((await app.inject({ method: 'POST', url: '/words/hello', headers: as('y') })).statusCode, 201)
    t.match(await deleteCustomer(app, 'x'), { status: 'completed', erased: {} }, `${name}: the hijacked delete withdrew x's label`)
    t.equal(words.get('hello'), 'y', `${name}: y's word survives x's deletion`)
    // A committed hijacked write is erased at once by its customer's deletion (no lease to wait out).
    t.equal((await app.inject({ method: 'POST', url: '/hijacked/other', headers: as('z') })).statusCode, 201)
    await until(async () => committed(await app.customerData.exportLabels('instance-1', 'z')))
    t.match(await deleteCustomer(app, 'z'), { status: 'completed', erased: { word: 1 } }, `${name}: z's hijacked write is erased`)
    t.notOk(words.has('other'))
  }
})

test('a delete or replace that did not happen withdraws nothing: answered by an earlier hook, or by a 2xx not-found handler', async (t) => {
  const words = new Map<string, string>()
  const app = Fastify()
  await app.register(customerData, {
    store: memoryStore(),
    instance: apiKeyInstances({ keys: { 'key-one': 'instance-1' } }),
    erasers: { word: async (ids) => { for (const id of ids) words.delete(id) } },
    waitMs: 2000
  })
  // A cache answers some requests before any handler runs, on reply or on reply.raw.
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers['x-cached'] === 'reply') return await reply.code(204).send()
    if (request.headers['x-cached'] === 'raw') {
      reply.hijack()
      reply.raw.writeHead(204).end()
      return reply
    }
  })
  // A single-page app answers unknown paths with its page, a 200.
  app.setNotFoundHandler(async (request, reply) => await reply.code(200).send('<html></html>'))
  app.post('/words/:word', { config: { customerData: { kind: 'word', id: word } } }, async (request, reply) => {
    words.set(word(request), request.customerIds.join(','))
    return await reply.code(201).send({})
  })
  const hidden = (request: FastifyRequest): boolean => request.headers['x-hidden'] === '1'
  app.delete('/words/:word', { config: { customerData: { kind: 'word', id: word, withdraw: true } } }, async (request, reply) => {
    if (hidden(request)) return reply.callNotFound() // not this caller's to delete: nothing is deleted
    words.delete(word(request))
    return await reply.code(204).send()
  })
  app.put('/words/:word', { config: { customerData: { kind: 'word', id: word, replace: true } } }, async (request, reply) => {
    if (hidden(request)) return reply.callNotFound() // nothing is written
    words.set(word(request), request.customerIds.join(','))
    return await reply.code(201).send({})
  })
  await app.ready()
  t.teardown(() => app.close())
  t.equal((await app.inject({ method: 'POST', url: '/words/hello', headers: as('x') })).statusCode, 201)
  const attempts: Array<[string, Record<string, string>]> = [
    ['DELETE', { 'x-cached': 'reply' }], ['DELETE', { 'x-cached': 'raw' }], ['DELETE', { 'x-hidden': '1' }], ['PUT', { 'x-hidden': '1' }]
  ]
  for (const [method, extra] of attempts) {
    const res = await app.inject({ method: method as 'DELETE' | 'PUT', url: '/words/hello', headers: { ...as('y'), ...extra } })
    t.ok(res.statusCode < 300, `${method} ${JSON.stringify(extra)} answered ${res.statusCode}`)
    await new Promise((resolve) => setTimeout(resolve, 20)) // a hijacked reply is finished after it is out
    const labels = (await app.customerData.exportLabels('instance-1', 'x')).items
    t.same(labels.map((l) => [l.id, l.state]), [['hello', 'committed']], `${method} ${JSON.stringify(extra)}: x's label is still there`)
  }
  t.match(await deleteCustomer(app, 'x'), { status: 'completed', erased: { word: 1 } }, 'x\'s deletion still erases x\'s word')
  t.notOk(words.has('hello'))
  const ys = (await app.customerData.exportLabels('instance-1', 'y')).items
  t.same(ys.map((l) => [l.id, l.state]), [['hello', 'pending']], 'y\'s label for the replace that did not happen was released, never committed')
})

test('replaced by another customer, or by an unlabeled write: the old owner\'s deletion leaves it', async (t) => {
  for (const [name, make] of stores(t)) {
    for (const replacer of ['y', null]) {
      const { app, words } = await host(t, make())
      await app.inject({ method: 'POST', url: '/words/hello', headers: as('x') })
      const headers = replacer === null ? AUTH : as(replacer)
      t.equal((await app.inject({ method: 'PUT', url: '/words/hello', headers })).statusCode, 201)
      t.match(await deleteCustomer(app, 'x'), { status: 'completed' })
      t.equal(words.get('hello'), replacer ?? '', `${name}, replaced by ${replacer ?? 'an unlabeled write'}: the word survives`)
    }
  }
})

test('without withdrawing, the stale label would erase the reused name (the failure this guards)', async (t) => {
  const { app, words } = await host(t, memoryStore())
  await app.inject({ method: 'POST', url: '/words/hello', headers: as('x') })
  words.delete('hello') // the host deletes it behind the library's back
  await app.inject({ method: 'POST', url: '/words/hello', headers: as('y') })
  t.match(await deleteCustomer(app, 'x'), { erased: { word: 1 } })
  t.notOk(words.has('hello'), 'y\'s word was erased: hosts must withdraw (README, "Withdrawing labels")')
})

test('withdrawing needs the instance: a delete without credentials is a Watson 401', async (t) => {
  const { app } = await host(t, memoryStore())
  const res = await app.inject({ method: 'DELETE', url: '/words/hello' })
  t.equal(res.statusCode, 401)
  t.match(res.json(), { code: 401, code_description: 'Unauthorized', error: /credentials/ })
})
