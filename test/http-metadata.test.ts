import { test } from 'tap'
import { connect } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { customerMetadata, errors } from '../index.js'
import { watsonClientErrorHandler } from '../lib/errors.js'
import { headerBytes, vectors } from './helpers/vectors.js'

interface RawResponse { status: number, body: string }

/** Sends one request with exactly these header bytes over a real socket. */
function rawRequest (port: number, headerValue: Buffer | Buffer[] | null, path = '/ids'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (c) => chunks.push(c))
    socket.on('error', reject)
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) })
    })
    const head: Buffer[] = [Buffer.from(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n`)]
    const lines = headerValue === null ? [] : Array.isArray(headerValue) ? headerValue : [headerValue]
    for (const line of lines) head.push(Buffer.from('X-Watson-Metadata: '), line, Buffer.from('\r\n'))
    head.push(Buffer.from('\r\n'))
    socket.end(Buffer.concat(head))
  })
}

async function server (options = {}, routes: (app: FastifyInstance) => void = () => {}) {
  const app = Fastify({ clientErrorHandler: watsonClientErrorHandler })
  await app.register(customerMetadata, options)
  app.get('/ids', async (request) => ({ ids: request.customerIds }))
  routes(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as { port: number }).port }
}

test('every header case over a real socket: the same IDs, or a Watson-shaped 400', async (t) => {
  const { app, port } = await server()
  t.teardown(() => app.close())
  for (const c of vectors.header) {
    const res = await rawRequest(port, headerBytes(c))
    if (c.error === true) {
      t.equal(res.status, 400, `${c.name}: 400`)
      const body = JSON.parse(res.body)
      t.equal(body.code, 400, `${c.name}: Watson code`)
      t.equal(body.code_description, 'Bad Request')
      t.equal(typeof body.error, 'string')
    } else {
      t.equal(res.status, 200, `${c.name}: 200`)
      t.same(JSON.parse(res.body).ids, c.ids, `${c.name}: ids`)
    }
  }
})

test('several header lines over a real socket: each read on its own, IDs united, never joined with ", "', async (t) => {
  const { app, port } = await server()
  t.teardown(() => app.close())
  t.ok(vectors.lines.length >= 8)
  for (const c of vectors.lines) {
    const res = await rawRequest(port, c.lines.map((l) => Buffer.from(l, 'utf8')))
    if (c.error === true) {
      t.equal(res.status, 400, `${c.name}: 400`)
      t.match(JSON.parse(res.body), { code: 400, code_description: 'Bad Request', error: /x-watson-metadata header/ })
    } else {
      t.equal(res.status, 200, `${c.name}: 200`)
      t.same(JSON.parse(res.body).ids, c.ids, `${c.name}: ids`)
    }
  }
  // One line whose value itself contains ", " is one line, read as written.
  const single = await rawRequest(port, Buffer.from('customer_id=a, b'))
  t.same(JSON.parse(single.body).ids, ['a, b'])
})

test('a request without the header gets no IDs and the same empty array', async (t) => {
  const seen: unknown[] = []
  const { app } = await server({}, (app) => {
    app.get('/same', async (request) => { seen.push(request.customerIds); return { n: request.customerIds.length } })
  })
  t.teardown(() => app.close())
  await app.inject('/same')
  await app.inject('/same')
  t.same(seen[0], [])
  t.equal(seen[0], seen[1], 'no allocation per request: one shared frozen array')
  t.ok(Object.isFrozen(seen[0]))
})

test('the header name and limits are options; bad options fail at ready()', async (t) => {
  const { app, port } = await server({ headerName: 'X-Customer', maxIds: 1 })
  t.teardown(() => app.close())
  const ok = await app.inject({ url: '/ids', headers: { 'x-customer': 'customer_id=a' } })
  t.same(ok.json(), { ids: ['a'] })
  const tooMany = await app.inject({ url: '/ids', headers: { 'x-customer': 'customer_id=a;customer_id=b' } })
  t.equal(tooMany.statusCode, 400)
  t.match(tooMany.json().error, /x-customer header.*more than 1 customer IDs/)
  const ignored = await rawRequest(port, Buffer.from('customer_id=z'))
  t.same(JSON.parse(ignored.body), { ids: [] }, 'the default header is not read when another is configured')

  for (const bad of [{ headerName: 'bad header' }, { maxIdLength: 0 }, { maxIds: 1.5 }]) {
    const broken = Fastify()
    broken.register(customerMetadata, bad)
    await t.rejects(async () => { await broken.ready() }, errors.FST_CUSTOMER_DATA_INVALID_OPTION, JSON.stringify(bad))
  }
})

test('a host error handler is not taken over', async (t) => {
  const app = Fastify()
  app.setErrorHandler((_err, _request, reply) => { reply.code(418).send('host') })
  await app.register(customerMetadata)
  app.get('/boom', async () => { throw new Error('x') })
  t.equal((await app.inject('/boom')).statusCode, 418)
  const bad = await app.inject({ url: '/boom', headers: { 'x-watson-metadata': 'customer_id' } })
  t.equal(bad.statusCode, 400)
  t.same(bad.json(), { code: 400, code_description: 'Bad Request', error: bad.json().error })
})
