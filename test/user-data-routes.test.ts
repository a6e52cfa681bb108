import { test } from 'tap'
import Fastify from 'fastify'
import { customerLabels, customerMetadata, userDataRoutes, memoryStore } from '../index.js'
import { basic, buildApp } from './helpers/app.js'
import { flakyStore } from './helpers/flaky-store.js'

const H1 = { authorization: basic('key-one') }

test('DELETE /v1/user_data: bad customer_id is a Watson 400 that says what to fix', async (t) => {
  const { app } = await buildApp()
  t.teardown(() => app.close())
  const cases: Array<[string, RegExp]> = [
    ['/v1/user_data', /customer_id query parameter: it is missing/],
    ['/v1/user_data?customer_id=', /it is empty/],
    ['/v1/user_data?customer_id=%20%09', /it is empty/],
    ['/v1/user_data?customer_id=a&customer_id=b', /it is repeated/],
    ['/v1/user_data?customer_id=a%01b', /control character/],
    ['/v1/user_data?customer_id=' + 'x'.repeat(257), /longer than 256 characters/]
  ]
  for (const [url, message] of cases) {
    for (const method of ['DELETE', 'GET'] as const) {
      const res = await app.inject({ method, url, headers: H1 })
      t.equal(res.statusCode, 400, `${method} ${url.slice(0, 40)}`)
      t.equal(res.json().code_description, 'Bad Request')
      t.match(res.json().error, message)
      t.notMatch(res.json().error, 'xxxxxxxxxx', 'the ID is not echoed')
    }
  }
  const badLimit = await app.inject({ url: '/v1/user_data?customer_id=a&limit=0', headers: H1 })
  t.equal(badLimit.statusCode, 400)
  t.match(badLimit.json().error, /limit/)
  const badCursor = await app.inject({ url: '/v1/user_data?customer_id=a&cursor=abc', headers: H1 })
  t.equal(badCursor.statusCode, 400)
})

test('no or unknown credentials: 401 in the Watson shape', async (t) => {
  const { app } = await buildApp()
  t.teardown(() => app.close())
  for (const headers of [{}, { authorization: basic('wrong') }, { authorization: 'Bearer nope' }]) {
    const res = await app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=a', headers })
    t.equal(res.statusCode, 401)
    t.equal(res.json().code, 401)
    t.match(res.json().error, /Unauthorized/)
  }
})

test('unknown customer: 200 completed, nothing erased; unknown deletion: 404', async (t) => {
  const { app } = await buildApp()
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=nobody', headers: H1 })
  t.equal(res.statusCode, 200)
  t.same(Object.keys(res.json()).sort(), ['deletion_id', 'erased', 'status'])
  t.same(res.json().erased, {})
  const missing = await app.inject({ url: '/v1/user_data/deletions/does-not-exist', headers: H1 })
  t.equal(missing.statusCode, 404)
  t.same(missing.json(), { code: 404, code_description: 'No Such Resource', error: missing.json().error })
})

test('export pages with a cursor', async (t) => {
  const { app } = await buildApp()
  t.teardown(() => app.close())
  for (let i = 0; i < 5; i++) await (await app.customerData.label('instance-1', ['alice'], 'word', `w${i}`)).commit()
  const ids: string[] = []
  let cursor: string | null = null
  do {
    const url: string = `/v1/user_data?customer_id=alice&limit=2${cursor === null ? '' : `&cursor=${cursor}`}`
    const page = (await app.inject({ url, headers: H1 })).json()
    t.equal(page.customer_id, 'alice')
    ids.push(...page.resources.map((r: { id: string, labeled_at: string }) => {
      t.ok(!Number.isNaN(Date.parse(r.labeled_at)))
      return r.id
    }))
    cursor = page.next_cursor
  } while (cursor !== null)
  t.same(ids, ['w0', 'w1', 'w2', 'w3', 'w4'])
})

test('a store that is down: 503 with Retry-After, nothing acknowledged', async (t) => {
  const flaky = flakyStore(memoryStore(), (method) => method !== 'close' && method !== 'onDoom')
  const { app } = await buildApp({ store: flaky.store })
  app.post('/corpora/:n', { config: { customerData: { kind: 'corpus', id: (r) => (r.params as { n: string }).n } } }, async () => ({ stored: true }))
  t.teardown(() => app.close())
  flaky.down = true
  const del = await app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=a', headers: H1 })
  t.equal(del.statusCode, 503)
  t.equal(del.headers['retry-after'], '5')
  t.equal(del.json().code, 503)
  const write = await app.inject({ method: 'POST', url: '/corpora/c', headers: { ...H1, 'x-watson-metadata': 'customer_id=a' } })
  t.equal(write.statusCode, 503, 'the handler never ran: nothing stored without a durable label')
  t.equal(write.headers['retry-after'], '5')
  const exp = await app.inject({ url: '/v1/user_data?customer_id=a', headers: H1 })
  t.equal(exp.statusCode, 503)
  flaky.down = false
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=a', headers: H1 })).statusCode, 200)
})

test('userDataRoutes honours a prefix; plugins can be registered one by one', async (t) => {
  const app = Fastify()
  await app.register(customerMetadata)
  await app.register(customerLabels, { store: memoryStore(), erasers: { word: async () => {} }, instance: (r) => r.headers['x-tenant'] as string ?? null })
  await app.register(userDataRoutes, { prefix: '/instances/:instance_id' })
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'DELETE', url: '/instances/abc/v1/user_data?customer_id=a', headers: { 'x-tenant': 't1' } })
  t.equal(res.statusCode, 200)
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=a', headers: { 'x-tenant': 't1' } })).statusCode, 404)
})
