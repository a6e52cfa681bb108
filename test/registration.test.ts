// No silent skip (issue 10): every way Fastify users register plugins and routes labels a route
// with config.customerData, or refuses to start naming it. Each case is a style seen in real apps.
import { test, type Test } from 'tap'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import customerData, { apiKeyInstances, customerLabels, memoryStore, userDataRoutes, errors, type CustomerDataOptions } from '../index.js'
import { basic } from './helpers/app.js'

const AUTH = { authorization: basic('key-one') }
const meta = (id: string): Record<string, string> => ({ 'x-watson-metadata': `customer_id=${id}` })

function options (stored: Set<string>, extra: Partial<CustomerDataOptions> = {}): CustomerDataOptions {
  return {
    store: memoryStore(),
    instance: apiKeyInstances({ keys: { 'key-one': 'instance-1' } }),
    erasers: { word: async (ids) => { for (const id of ids) stored.delete(id) } },
    waitMs: 2000,
    reaperMs: 50,
    ...extra
  }
}

const wordRoute = {
  config: { customerData: { kind: 'word', id: (request: FastifyRequest) => (request.params as { word: string }).word } }
}

/** Stores a word for alice, then checks the export lists it and a deletion erases it. */
async function assertLabeledAndErased (t: Test, app: FastifyInstance, stored: Set<string>): Promise<void> {
  const put = await app.inject({ method: 'PUT', url: '/words/hello', headers: { ...AUTH, ...meta('alice') } })
  t.equal(put.statusCode, 201, 'stored')
  t.ok(stored.has('hello'))
  const exported = (await app.inject({ url: '/v1/user_data?customer_id=alice', headers: AUTH })).json()
  t.match(exported.resources, [{ kind: 'word', id: 'hello' }], 'the export lists the word: it was labeled')
  const del = (await app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=alice', headers: AUTH })).json()
  t.match(del, { status: 'completed', erased: { word: 1 } })
  t.notOk(stored.has('hello'), 'the deletion erased it')
}

function addWordRoute (app: FastifyInstance, stored: Set<string>): void {
  app.put('/words/:word', wordRoute, async (request, reply) => {
    stored.add((request.params as { word: string }).word)
    return reply.code(201).send({})
  })
}

test('register without await, then the route', async (t) => {
  const stored = new Set<string>()
  const app = Fastify()
  app.register(customerData, options(stored))
  addWordRoute(app, stored)
  await app.ready()
  t.teardown(() => app.close())
  await assertLabeledAndErased(t, app, stored)
})

test('the route declared before the plugin', async (t) => {
  const stored = new Set<string>()
  const app = Fastify()
  addWordRoute(app, stored)
  await app.register(customerData, options(stored))
  t.teardown(() => app.close())
  await assertLabeledAndErased(t, app, stored)
})

test('the route in an encapsulated plugin registered before ours', async (t) => {
  const stored = new Set<string>()
  const app = Fastify()
  app.register(async (child) => { addWordRoute(child, stored) })
  app.register(customerData, options(stored))
  await app.ready()
  t.teardown(() => app.close())
  await assertLabeledAndErased(t, app, stored)
})

/** A word route at `path` in `scope` that records what its handler stored. */
function wordAt (scope: FastifyInstance, path: string, stored: Set<string>): void {
  scope.put(`${path}/:word`, wordRoute, async (request, reply) => {
    stored.add((request.params as { word: string }).word)
    return await reply.code(201).send({})
  })
}

test('registered inside an encapsulated plugin: its routes are labeled, a labeled route it cannot see is refused, never unlabeled', async (t) => {
  // A common layout: the API (and this plugin) under a prefix plugin, other routes beside it.
  const stored = new Set<string>()
  const app = Fastify()
  wordAt(app, '/root-before', stored)
  app.register(async (sibling) => { wordAt(sibling, '/sibling-before', stored) })
  app.register(async (api) => {
    await api.register(customerData, options(stored))
    wordAt(api, '/inside', stored)
    api.register(async (nested) => { wordAt(nested, '/nested', stored) })
  }, { prefix: '/api' })
  app.get('/health', async () => ({ ok: true }))
  await app.ready()
  t.teardown(() => app.close())
  for (const path of ['/root-before', '/sibling-before']) {
    const res = await app.inject({ method: 'PUT', url: `${path}/w`, headers: { ...AUTH, ...meta('alice') } })
    t.equal(res.statusCode, 500, path)
    t.match(res.json(), { code: 500, error: new RegExp(`route PUT ${path}/:word has config.customerData, but fastify-customer-data is registered in an encapsulated plugin that does not contain it`) })
  }
  t.same([...stored], [], 'no handler ran, so nothing was stored unlabeled')
  t.equal((await app.inject({ url: '/health', headers: { 'x-watson-metadata': 'not the grammar' } })).statusCode, 200, 'routes outside the scope keep Fastify\'s encapsulation')
  for (const path of ['/api/inside', '/api/nested']) {
    t.equal((await app.inject({ method: 'PUT', url: `${path}/${path.slice(5)}`, headers: { ...AUTH, ...meta('alice') } })).statusCode, 201, path)
  }
  const del = (await app.inject({ method: 'DELETE', url: '/api/v1/user_data?customer_id=alice', headers: AUTH })).json()
  t.match(del, { status: 'completed', erased: { word: 2 } })
  t.same([...stored], [], 'the scope\'s routes were labeled and erased')

  // Added after the plugin, outside its scope: the app does not start.
  const late = Fastify()
  await late.register(async (api) => { await api.register(customerData, options(new Set())) }, { prefix: '/api' })
  wordAt(late, '/late', new Set())
  await t.rejects(async () => { await late.ready() }, { code: 'FST_CUSTOMER_DATA_INVALID_OPTION', message: /route PUT \/late\/:word has config.customerData/ }, 'added after, at the root')
  const sibling = Fastify()
  sibling.register(async (api) => { await api.register(customerData, options(new Set())) }, { prefix: '/api' })
  sibling.register(async (other) => { wordAt(other, '/late', new Set()) })
  await t.rejects(async () => { await sibling.ready() }, { code: 'FST_CUSTOMER_DATA_INVALID_OPTION', message: /route PUT \/late\/:word has config.customerData/ }, 'added after, in a sibling plugin')
})

test('inside an encapsulated plugin, a bad route config added after it still stops the app at startup', async (t) => {
  const app = Fastify()
  let refused: unknown = null
  app.register(async (api) => {
    await api.register(customerData, options(new Set()))
    try {
      api.put('/a', { config: { customerData: { kind: 'grammar', id: () => 'x' } } }, async () => ({}))
    } catch (err) {
      refused = err
    }
  })
  await app.ready()
  t.teardown(() => app.close())
  t.type(refused, errors.FST_CUSTOMER_DATA_NO_ERASER)
})

test('two registrations in sibling plugins (two services under two prefixes) each label their own routes', async (t) => {
  const stored = new Set<string>()
  const app = Fastify()
  for (const prefix of ['/v1', '/v2']) {
    app.register(async (service) => {
      // Not awaited: the route is declared before the plugin has loaded.
      service.register(customerData, options(stored, { routePrefix: '/svc' }))
      wordAt(service, '/words', stored)
    }, { prefix })
  }
  await app.ready()
  t.teardown(() => app.close())
  for (const prefix of ['/v1', '/v2']) {
    t.equal((await app.inject({ method: 'PUT', url: `${prefix}/words/${prefix.slice(1)}`, headers: { ...AUTH, ...meta('alice') } })).statusCode, 201)
  }
  for (const prefix of ['/v1', '/v2']) {
    const del = (await app.inject({ method: 'DELETE', url: `${prefix}/svc/v1/user_data?customer_id=alice`, headers: AUTH })).json()
    t.match(del, { status: 'completed', erased: { word: 1 } }, `${prefix}: its own store's label`)
  }
  t.same([...stored], [])
})

test('registered twice where one registration contains the other: refused at startup, saying why', async (t) => {
  for (const rootFirst of [true, false]) {
    const app = Fastify()
    const atRoot = (): void => { app.register(customerData, options(new Set())) }
    if (rootFirst) atRoot()
    app.register(async (api) => { await api.register(customerData, options(new Set())) })
    if (!rootFirst) atRoot()
    await t.rejects(async () => { await app.ready() }, { code: 'FST_CUSTOMER_DATA_INVALID_OPTION', message: /registered twice where one registration contains the other/ }, rootFirst ? 'root, then a child' : 'a child, then the root')
  }
})

test('a bad route config: refused at startup when seen, a Watson 500 naming the route otherwise, never unlabeled', async (t) => {
  const after = Fastify()
  await after.register(customerData, options(new Set()))
  t.throws(() => after.put('/a', { config: { customerData: { kind: 'grammar', id: () => 'x' } } }, async () => ({})), errors.FST_CUSTOMER_DATA_NO_ERASER)
  await after.close()

  const stored = new Set<string>()
  const before = Fastify()
  before.put('/b/:word', { config: { customerData: { kind: 'word', id: 'not a function' } } } as never, async (request) => {
    stored.add('b')
    return {}
  })
  await before.register(customerData, options(stored))
  t.teardown(() => before.close())
  const res = await before.inject({ method: 'PUT', url: '/b/x', headers: { ...AUTH, ...meta('alice') } })
  t.equal(res.statusCode, 500)
  t.match(res.json(), { code: 500, error: /route PUT \/b\/:word: config.customerData must be/ })
  t.notOk(stored.has('b'), 'the handler never ran, so nothing was stored unlabeled')
})

test('a resource name no store can hold, taken from the URL, is a Watson 400 before the handler runs', async (t) => {
  const stored = new Set<string>()
  const app = Fastify({ routerOptions: { maxParamLength: 4096 } }) // names longer than Fastify's default 100
  await app.register(customerData, options(stored))
  addWordRoute(app, stored)
  app.delete('/words/:word', { config: { customerData: { kind: 'word', id: (request) => request.params.word, withdraw: true } } }, async (request, reply) => reply.code(204).send())
  t.teardown(() => app.close())
  for (const [method, name] of [['PUT', 'a%00b'], ['PUT', 'x'.repeat(1025)], ['DELETE', 'a%00b']] as const) {
    const res = await app.inject({ method, url: `/words/${name}`, headers: { ...AUTH, ...meta('alice') } })
    t.equal(res.statusCode, 400, `${method} ${name.slice(0, 10)}`)
    t.match(res.json(), { code: 400, code_description: 'Bad Request', error: /resource name in this request is not valid/ })
  }
  t.equal(stored.size, 0, 'nothing was stored')
})

test('customerLabels without customerMetadata fails at register, naming the missing plugin', async (t) => {
  const app = Fastify()
  app.register(customerLabels, options(new Set()))
  await t.rejects(async () => { await app.ready() }, /fastify-customer-data\/customer-metadata/)
  const routesAlone = Fastify()
  routesAlone.register(userDataRoutes)
  await t.rejects(async () => { await routesAlone.ready() }, /fastify-customer-data\/customer-labels/)
})

test("a host's own error reply on the user_data routes reaches the client unchanged", async (t) => {
  const app = Fastify()
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers['x-host-token'] !== 'ok') return await reply.code(401).send({ message: 'host says no', realm: 'host' })
  })
  await app.register(customerData, options(new Set()))
  t.teardown(() => app.close())
  for (const [method, url] of [['DELETE', '/v1/user_data?customer_id=a'], ['GET', '/v1/user_data?customer_id=a'], ['GET', '/v1/user_data/deletions/x']] as const) {
    const res = await app.inject({ method, url, headers: AUTH })
    t.equal(res.statusCode, 401, `${method} ${url}`)
    t.same(res.json(), { message: 'host says no', realm: 'host' })
  }
})

/**
 * A WebSocket route labeled by config; the client closes with `code` after the server stored.
 * `inChild`: @fastify/websocket and the route live in an encapsulated plugin (their own server).
 */
async function wsSession (t: Test, closeCode: number | 'terminate', inChild = false): Promise<void> {
  const stored = new Set<string>()
  const app = Fastify()
  await app.register(customerData, options(stored, { leaseMs: 60_000 }))
  const addRoute = (scope: FastifyInstance): void => {
    scope.get('/sessions/:word', { websocket: true, ...wordRoute }, (socket, request) => {
      stored.add((request.params as { word: string }).word)
      socket.send('stored')
    })
  }
  if (inChild) {
    await app.register(async (child) => { await child.register(websocket); addRoute(child) })
  } else {
    await app.register(websocket)
    addRoute(app)
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const port = (app.server.address() as { port: number }).port
  const ws = new WebSocket(`ws://127.0.0.1:${port}/sessions/hello?x-watson-metadata=customer_id%3Dalice`, { headers: AUTH })
  await new Promise((resolve) => ws.once('message', resolve))
  const closed = new Promise((resolve) => ws.once('close', resolve))
  if (closeCode === 'terminate') ws.terminate()
  else ws.close(closeCode)
  await closed
  if (closeCode === 1000) {
    // A normal close commits the label (released would also let a deletion finish, but a released
    // label stays pending for good, out of reach of a later withdrawal).
    const deadline = Date.now() + 2000
    let state = ''
    while (state !== 'committed' && Date.now() < deadline) {
      state = (await app.customerData.exportLabels('instance-1', 'alice')).items[0]?.state ?? ''
      if (state !== 'committed') await new Promise((resolve) => setTimeout(resolve, 5))
    }
    t.equal(state, 'committed', 'the normal close committed the label')
  }
  // Waiting for the server to see the close: its label must no longer block a deletion.
  const del = await fetch(`http://127.0.0.1:${port}/v1/user_data?customer_id=alice`, { method: 'DELETE', headers: AUTH })
  const body = await del.json() as { status: string, erased: Record<string, number> }
  t.equal(body.status, 'completed', 'the deletion completed at once, not after the 60 s lease')
  t.same(body.erased, { word: 1 })
  t.notOk(stored.has('hello'), 'the session\'s data was erased')
}

test('a WebSocket route commits its label when the session ends normally', async (t) => {
  await wsSession(t, 1000)
})

test('a WebSocket route in an encapsulated plugin with its own @fastify/websocket commits on a normal close', async (t) => {
  await wsSession(t, 1000, true)
})

test('a WebSocket route releases its label when the session fails, and a deletion still erases', async (t) => {
  await wsSession(t, 'terminate')
})

test('close() does not hang after a refused upgrade, in either plugin order', async (t) => {
  for (const websocketFirst of [false, true]) {
    const app = Fastify()
    if (websocketFirst) await app.register(websocket)
    await app.register(customerData, options(new Set()))
    if (!websocketFirst) await app.register(websocket)
    app.get('/ws', { websocket: true }, (socket) => { socket.close() })
    await app.listen({ port: 0, host: '127.0.0.1' })
    const port = (app.server.address() as { port: number }).port
    const refused = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?x-watson-metadata=customer_id%3D`, { headers: { 'x-watson-metadata': 'bad' } })
      ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode as number) })
      ws.on('error', reject)
    })
    t.equal(refused, 400)
    const outcome = await Promise.race([app.close().then(() => 'closed'), new Promise((resolve) => setTimeout(resolve, 5000, 'hung')).then(String)])
    t.equal(outcome, 'closed', websocketFirst ? '@fastify/websocket first' : 'customerData first')
  }
})

test('every bad option is refused at ready() with FST_CUSTOMER_DATA_INVALID_OPTION naming it', async (t) => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['batchSize', { batchSize: 0 }], ['batchSize', { batchSize: 0.5 }], ['batchSize', { batchSize: -1 }],
    ['batchSize', { batchSize: Number.NaN }], ['batchSize', { batchSize: Infinity }], ['batchSize', { batchSize: '10' }],
    ['leaseMs', { leaseMs: 0 }], ['leaseMs', { leaseMs: Infinity }], ['leaseMs', { leaseMs: '60000' }],
    ['reaperMs', { reaperMs: -1 }], ['eraserTimeoutMs', { eraserTimeoutMs: Number.NaN }],
    ['retryMinMs', { retryMinMs: 0 }], ['retryMaxMs', { retryMaxMs: 2 ** 40 }], ['retryMinMs', { retryMinMs: 500, retryMaxMs: 100 }],
    ['waitMs', { waitMs: -5 }], ['waitMs', { waitMs: '5s' }],
    ['maxIds', { maxIds: 0 }], ['maxIds', { maxIds: 2.5 }], ['maxIdLength', { maxIdLength: Infinity }],
    ['headerName', { headerName: 'bad header' }], ['queryParameter', { queryParameter: '' }],
    ['redactLogs', { redactLogs: 'yes' }], ['redactParameters', { redactParameters: 'user_secret' }],
    ['routes', { routes: 'no' }], ['routePrefix', { routePrefix: 'instances' }],
    ['"batchsize"', { batchsize: 10 }], ['"erasser"', { erasser: {} }]
  ]
  for (const [name, bad] of cases) {
    const app = Fastify()
    app.register(customerData, { ...options(new Set()), ...bad } as never)
    const err = await app.ready().then(() => null, (e: Error) => e)
    t.ok(err instanceof errors.FST_CUSTOMER_DATA_INVALID_OPTION, `${JSON.stringify(bad)} is refused`)
    t.match(err?.message, name, `${JSON.stringify(bad)}: the message names ${name}`)
    await app.close().catch(() => {})
  }
})
