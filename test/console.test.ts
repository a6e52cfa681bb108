// The console's HTTP side: sign-in through the instance resolver, the session cookie, CSRF on
// state-changing calls, one instance only, security headers, options checked at register.
import { test, type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import customerData, { apiKeyInstances, customerDataConsole, errors, memoryStore } from '../index.js'
import { ConsoleSessions } from '../lib/console-sessions.js'
import { buildApp } from './helpers/app.js'

const JSON_HEADERS = { 'content-type': 'application/json' }

interface Signed { cookie: string, csrf: string, setCookie: string }

async function signIn (app: FastifyInstance, key: string, prefix = '/console'): Promise<Signed> {
  const res = await app.inject({ method: 'POST', url: `${prefix}/api/session`, headers: JSON_HEADERS, payload: { api_key: key } })
  if (res.statusCode !== 200) throw new Error(`sign-in failed: ${res.statusCode} ${res.body}`)
  const setCookie = res.headers['set-cookie'] as string
  return { cookie: setCookie.split(';')[0], csrf: res.json().csrf_token, setCookie }
}

function as (s: Signed, csrf = true): Record<string, string> {
  return { cookie: s.cookie, ...JSON_HEADERS, ...(csrf ? { 'x-csrf-token': s.csrf } : {}) }
}

function watson (t: Test, res: LightMyRequestResponse, code: number, message?: RegExp): void {
  t.equal(res.statusCode, code)
  t.equal(res.json().code, code)
  t.type(res.json().code_description, 'string')
  if (message !== undefined) t.match(res.json().error, message)
}

test('the page and its files come from the plugin, with a strict CSP; nothing else is needed', async (t) => {
  const { app } = await buildApp({ console: { prefix: '/ops/console' } })
  t.teardown(() => app.close())
  const page = await app.inject({ url: '/ops/console/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.headers['content-security-policy'], /default-src 'none'; script-src 'self'/)
  t.match(page.headers['content-security-policy'], /frame-ancestors 'none'/)
  t.equal(page.headers['x-content-type-options'], 'nosniff')
  t.equal(page.headers['cache-control'], 'no-store')
  t.match(page.body, 'src="/ops/console/console.js"')
  t.notMatch(page.body, /https?:\/\//, 'no external URL')
  t.notMatch(page.body, /<script>|\son[a-z]+=|\sstyle=/, 'no inline script, handler or style for the CSP to allow')
  for (const [file, type] of [['console.js', /javascript/], ['console.css', /text\/css/], ['favicon.svg', /svg/]] as const) {
    const res = await app.inject({ url: `/ops/console/${file}` })
    t.equal(res.statusCode, 200, file)
    t.match(res.headers['content-type'], type)
  }
  t.notMatch((await app.inject({ url: '/ops/console/console.js' })).body, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, 'the script never parses data as HTML')
  t.equal((await app.inject({ url: '/console/' })).statusCode, 404, 'only under its prefix')
})

test('sign-in: the API key through the instance resolver; a wrong key gets no session', async (t) => {
  const { app } = await buildApp({ console: { prefix: '/console' } })
  t.teardown(() => app.close())
  const wrong = await app.inject({ method: 'POST', url: '/console/api/session', headers: JSON_HEADERS, payload: { api_key: 'nope' } })
  watson(t, wrong, 401, /Unauthorized/)
  t.equal(wrong.headers['set-cookie'], undefined, 'no cookie for a wrong key')
  watson(t, await app.inject({ method: 'POST', url: '/console/api/session', headers: JSON_HEADERS, payload: { api_key: '' } }), 400)
  watson(t, await app.inject({ method: 'POST', url: '/console/api/session', headers: JSON_HEADERS, payload: {} }), 400, /api_key/)
  const form = await app.inject({ method: 'POST', url: '/console/api/session', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'api_key=key-one' })
  t.equal(form.statusCode, 415, 'a cross-site form cannot sign in')

  const s = await signIn(app, 'key-one')
  t.match(s.setCookie, /^customer_data_console=[A-Za-z0-9_-]{43}; Path=\/console; Max-Age=28800; HttpOnly; SameSite=Strict$/, 'a random id, HttpOnly, SameSite=Strict, no Secure over http')
  t.match(s.csrf, /^[A-Za-z0-9_-]{43}$/)
  const again = await signIn(app, 'key-one')
  t.not(again.cookie, s.cookie, 'each sign-in gets a fresh id')
  const replaced = await app.inject({ method: 'POST', url: '/console/api/session', headers: { ...JSON_HEADERS, cookie: again.cookie }, payload: { api_key: 'key-one' } })
  t.equal(replaced.statusCode, 200)
  t.equal((await app.inject({ url: '/console/api/session', headers: { cookie: again.cookie } })).statusCode, 401, 'signing in again ends the session the browser had')
  const me = await app.inject({ url: '/console/api/session', headers: { cookie: s.cookie } })
  t.same(me.json(), { instance: 'instance-1', csrf_token: s.csrf }, 'a reload finds the session')
  const https = await app.inject({ method: 'POST', url: '/console/api/session', headers: { ...JSON_HEADERS, 'x-forwarded-proto': 'https' }, payload: { api_key: 'key-one' } })
  t.notMatch(https.headers['set-cookie'], /Secure/, 'a forwarded header is not trusted unless Fastify trusts the proxy')
})

test('the resolver sees the sign-in request with Basic apikey credentials, and the cookie is not passed on', async (t) => {
  const seen: Array<{ authorization?: string, cookie?: string, ip: string }> = []
  const app = Fastify()
  await app.register(customerData, {
    store: memoryStore(),
    erasers: { audio: async () => {} },
    instance: (request) => {
      seen.push({ authorization: request.headers.authorization, cookie: request.headers.cookie, ip: request.ip })
      return request.headers.authorization === 'Basic ' + Buffer.from('apikey:sesame').toString('base64') ? 'tenant-a' : null
    },
    console: { prefix: '/console', secureCookie: true }
  })
  t.teardown(() => app.close())
  const res = await app.inject({ method: 'POST', url: '/console/api/session', headers: { ...JSON_HEADERS, cookie: 'other=1' }, payload: { api_key: 'sesame' } })
  t.equal(res.statusCode, 200)
  t.equal(res.json().instance, 'tenant-a')
  t.match(res.headers['set-cookie'], /; Secure$/, 'secureCookie: true')
  t.same(seen, [{ authorization: 'Basic ' + Buffer.from('apikey:sesame').toString('base64'), cookie: undefined, ip: '127.0.0.1' }])
})

test('every call needs the session; state changes need its CSRF token', async (t) => {
  const { app } = await buildApp({ console: { prefix: '/console' }, waitMs: 0 })
  t.teardown(() => app.close())
  await (await app.customerData.label('instance-1', ['alice'], 'audio', 'a1')).commit()
  for (const [method, url] of [['GET', '/console/api/deletions'], ['GET', '/console/api/deletions/x'], ['POST', '/console/api/lookup'], ['POST', '/console/api/deletions'], ['GET', '/console/api/session'], ['DELETE', '/console/api/session']] as const) {
    const body = method === 'POST' ? { headers: JSON_HEADERS, payload: { customer_id: 'alice' } } : { headers: {} }
    watson(t, await app.inject({ method, url, ...body }), 401)
    watson(t, await app.inject({ method, url, ...body, headers: { ...body.headers, cookie: 'customer_data_console=forged' } }), 401)
  }
  const s = await signIn(app, 'key-one')
  watson(t, await app.inject({ method: 'POST', url: '/console/api/deletions', headers: as(s, false), payload: { customer_id: 'alice' } }), 403, /x-csrf-token/)
  watson(t, await app.inject({ method: 'POST', url: '/console/api/deletions', headers: { ...as(s), 'x-csrf-token': s.csrf.slice(1) + 'A' }, payload: { customer_id: 'alice' } }), 403)
  const other = await signIn(app, 'key-one')
  watson(t, await app.inject({ method: 'POST', url: '/console/api/deletions', headers: { ...as(s), 'x-csrf-token': other.csrf }, payload: { customer_id: 'alice' } }), 403, undefined)
  t.equal((await app.customerData.exportLabels('instance-1', 'alice')).items.length, 1, 'nothing was deleted without the token')

  const found = await app.inject({ method: 'POST', url: '/console/api/lookup', headers: as(s), payload: { customer_id: 'alice' } })
  t.equal(found.statusCode, 200)
  t.match(found.json(), { resources: [{ kind: 'audio', id: 'a1' }], next_cursor: null })
  t.notOk(found.body.includes('alice'), 'the answer does not echo the customer ID')
  watson(t, await app.inject({ method: 'POST', url: '/console/api/lookup', headers: as(s), payload: { customer_id: 'a\u0001b' } }), 400, /control character/)
  watson(t, await app.inject({ method: 'POST', url: '/console/api/lookup', headers: as(s), payload: { customer_id: 'x'.repeat(300) } }), 400, /longer than 256/)

  const del = await app.inject({ method: 'POST', url: '/console/api/deletions', headers: as(s), payload: { customer_id: 'alice' } })
  t.equal(del.statusCode, 202)
  t.notOk(del.body.includes('alice'))
  const id = del.json().deletion_id
  for (let i = 0; i < 100; i++) {
    if ((await app.inject({ url: `/console/api/deletions/${id}`, headers: { cookie: s.cookie } })).json().status === 'completed') break
    await sleep(20)
  }
  const status = await app.inject({ url: `/console/api/deletions/${id}`, headers: { cookie: s.cookie } })
  t.match(status.json(), { deletion_id: id, status: 'completed', erased: { audio: 1 } })
  t.same((await app.inject({ url: '/console/api/deletions?status=completed', headers: { cookie: s.cookie } })).json().deletions.map((d: { deletion_id: string }) => d.deletion_id), [id])
  watson(t, await app.inject({ url: '/console/api/deletions?limit=0', headers: { cookie: s.cookie } }), 400, /limit/)

  const out = await app.inject({ method: 'DELETE', url: '/console/api/session', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } })
  t.equal(out.statusCode, 204)
  t.match(out.headers['set-cookie'], /^customer_data_console=; Path=\/console; Max-Age=0; HttpOnly; SameSite=Strict/)
  watson(t, await app.inject({ url: '/console/api/deletions', headers: { cookie: s.cookie } }), 401, undefined)
  t.equal((await app.inject({ url: '/console/api/deletions', headers: { cookie: other.cookie } })).statusCode, 200, 'other sessions live on')
})

test("a session sees only its own instance's deletions", async (t) => {
  const { app } = await buildApp({ console: { prefix: '/console' } })
  t.teardown(() => app.close())
  await (await app.customerData.label('instance-2', ['bob'], 'audio', 'b1')).commit()
  const theirs = await app.customerData.requestDeletion('instance-2', 'bob')
  const ours = await app.customerData.requestDeletion('instance-1', 'carol')
  const s = await signIn(app, 'key-one')
  const list = (await app.inject({ url: '/console/api/deletions', headers: { cookie: s.cookie } })).json()
  t.same(list.deletions.map((d: { deletion_id: string }) => d.deletion_id), [ours.id])
  watson(t, await app.inject({ url: `/console/api/deletions/${theirs.id}`, headers: { cookie: s.cookie } }), 404)
  const lookup = await app.inject({ method: 'POST', url: '/console/api/lookup', headers: as(s), payload: { customer_id: 'bob' } })
  t.same(lookup.json().resources, [], "another instance's customer has nothing here")
})

test('sessions expire when idle and at their maximum age', async (t) => {
  const { app } = await buildApp({ console: { prefix: '/console', idleMs: 150, maxAgeMs: 400 } })
  t.teardown(() => app.close())
  const s = await signIn(app, 'key-one')
  for (let i = 0; i < 3; i++) {
    await sleep(100)
    t.equal((await app.inject({ url: '/console/api/session', headers: { cookie: s.cookie } })).statusCode, 200, 'use keeps it alive')
  }
  await sleep(150)
  t.equal((await app.inject({ url: '/console/api/session', headers: { cookie: s.cookie } })).statusCode, 401, 'until it reaches its maximum age')
  const idle = await signIn(app, 'key-one')
  await sleep(200)
  t.equal((await app.inject({ url: '/console/api/session', headers: { cookie: idle.cookie } })).statusCode, 401, 'idle too long')
})

test('session store: bounded, hashed ids, constant-time CSRF check', async (t) => {
  const sessions = new ConsoleSessions({ idleMs: 1000, maxAgeMs: 5000, max: 3 })
  const made = [0, 1, 2, 3].map((i) => sessions.create(`i${i}`, 0))
  t.equal(sessions.size, 3, 'never more than max')
  t.equal(sessions.get(made[0].id, 1), null, 'the oldest made room')
  t.equal(sessions.get(made[3].id, 1)?.instance, 'i3')
  const expired = new ConsoleSessions({ idleMs: 10, maxAgeMs: 5000, max: 2 })
  const a = expired.create('a', 0)
  expired.create('b', 0)
  const c = expired.create('c', 100)
  t.equal(expired.size, 1, 'expired sessions go first')
  t.equal(expired.get(a.id, 100), null)
  t.equal(expired.get(c.id, 100)?.instance, 'c')
  t.equal(sessions.get(undefined, 0), null)
  t.equal(sessions.get('x'.repeat(200), 0), null)
  t.notOk(ConsoleSessions.csrfMatches(made[3].session, undefined))
  t.notOk(ConsoleSessions.csrfMatches(made[3].session, 'short'))
  t.ok(ConsoleSessions.csrfMatches(made[3].session, made[3].session.csrf))
  sessions.end(undefined)
  sessions.end(made[3].id)
  t.equal(sessions.get(made[3].id, 1), null)
})

test('console options are checked at register', async (t) => {
  for (const bad of [{}, { prefix: 'console' }, { prefix: '/con sole' }, { prefix: '/a/<b>' }, { prefix: '/c', idleMs: 0 }, { prefix: '/c', maxSessions: 1.5 }, { prefix: '/c', secureCookie: 'yes' }]) {
    const app = Fastify()
    app.register(customerData, { store: memoryStore(), erasers: { audio: async () => {} }, instance: () => 'i', routes: false })
    app.register(customerDataConsole, bad as never)
    await t.rejects(async () => { await app.ready() }, errors.FST_CUSTOMER_DATA_INVALID_OPTION, JSON.stringify(bad))
    await app.close()
  }
})

test('a trace-level host that logs headers logs no API key, session id, CSRF token or customer ID from the console', async (t) => {
  const chunks: string[] = []
  const app = Fastify({
    logger: {
      level: 'trace',
      stream: { write (line: string) { chunks.push(line) } },
      serializers: { req: (req: { method: string, url: string, headers: unknown }) => ({ method: req.method, url: req.url, headers: req.headers }) }
    }
  })
  const apiKey = 'c0nsole-K3y-N0t-In-Logs'
  const customer = 'c0nsole-Cust0mer-N0t-In-Logs'
  await app.register(customerData, {
    store: memoryStore(),
    erasers: { audio: async () => {} },
    instance: apiKeyInstances({ keys: { [apiKey]: 'instance-1' } }),
    console: { prefix: '/console' }
  })
  t.teardown(() => app.close())
  await (await app.customerData.label('instance-1', [customer], 'audio', 'a1')).commit()
  const s = await signIn(app, apiKey)
  app.log.trace({ headers: as(s) }, 'a host logging a console request itself')
  await app.inject({ method: 'POST', url: '/console/api/lookup', headers: as(s), payload: { customer_id: customer } })
  await app.inject({ method: 'POST', url: '/console/api/deletions', headers: as(s), payload: { customer_id: customer } })
  await app.inject({ method: 'POST', url: '/console/api/session', headers: JSON_HEADERS, payload: { api_key: apiKey + 'x' } })
  const printed = chunks.join('')
  t.ok(printed.includes('incoming request'), 'the app logged at trace')
  for (const [name, value] of Object.entries({ apiKey, customer, session: s.cookie.split('=')[1], csrf: s.csrf })) {
    t.notOk(printed.includes(value), `${name} is not in the logs`)
  }
})
