import { test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import { customerMetadata, websocketMetadata } from '../index.js'
import { vectors } from './helpers/vectors.js'

async function server () {
  const app = Fastify()
  await app.register(websocket)
  await app.register(customerMetadata)
  await app.register(websocketMetadata)
  app.get('/v1/recognize', { websocket: true }, (socket, request) => {
    socket.send(JSON.stringify({ ids: request.customerIds }))
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as { port: number }).port }
}

type Outcome = { ids: string[] } | { status: number, body: { code: number, code_description: string, error: string } }

/** Opens a real WebSocket; resolves with the IDs the server saw, or the HTTP refusal. */
function open (port: number, query: string, header?: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/recognize${query === '' ? '' : '?' + query}`,
      header === undefined ? {} : { headers: { 'X-Watson-Metadata': header } })
    ws.on('message', (data) => { resolve(JSON.parse(data.toString())); ws.close() })
    ws.on('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', (c) => { text += c })
      res.on('end', () => { resolve({ status: res.statusCode as number, body: JSON.parse(text) }) })
    })
    ws.on('error', reject)
  })
}

test('every query case over a real WebSocket upgrade', async (t) => {
  const { app, port } = await server()
  t.teardown(() => app.close())
  for (const c of vectors.query) {
    const res = await open(port, c.query)
    if (c.error === true) {
      t.same(res, { status: 400, body: { code: 400, code_description: 'Bad Request', error: (res as { body: { error: string } }).body?.error } }, `${c.name}: 400 before the upgrade`)
      t.match((res as { body: { error: string } }).body.error, /x-watson-metadata query parameter/)
    } else {
      t.same(res, { ids: c.ids }, c.name)
    }
  }
})

test('every upgrade case (header and query together)', async (t) => {
  const { app, port } = await server()
  t.teardown(() => app.close())
  t.ok(vectors.upgrade.length >= 3)
  for (const c of vectors.upgrade) {
    const res = await open(port, c.query, c.header)
    if (c.error === true) {
      t.equal((res as { status: number }).status, 400, c.name)
      t.match((res as { body: { error: string } }).body.error, /header and the x-watson-metadata query parameter/)
    } else {
      t.same(res, { ids: c.ids }, c.name)
    }
  }
})

test('header error cases are refused on upgrades too', async (t) => {
  const { app, port } = await server()
  t.teardown(() => app.close())
  for (const c of vectors.header.filter((c) => c.error === true && c.header !== undefined && /^[\x20-\x7e]*$/.test(c.header))) {
    const res = await open(port, '', c.header)
    t.equal((res as { status: number }).status, 400, c.name)
  }
})

test('the same ID by header and by query parameter is the same string', async (t) => {
  const { app, port } = await server()
  t.teardown(() => app.close())
  const id = 'Zoë 日本 + ok'
  const viaQuery = await open(port, 'x-watson-metadata=' + encodeURIComponent(`customer_id=${id}`))
  const viaHeader = await app.inject({ url: '/v1/recognize', headers: { 'x-watson-metadata': Buffer.from(`customer_id=${id}`).toString('latin1') } })
  t.same(viaQuery, { ids: [id] })
  t.equal(viaHeader.statusCode, 404, 'a plain GET of a websocket route is not upgraded')
  const echo = Fastify()
  await echo.register(customerMetadata)
  echo.get('/', async (request) => request.customerIds)
  t.same((await echo.inject({ url: '/', headers: { 'x-watson-metadata': Buffer.from(`customer_id=${id}`).toString('latin1') } })).json(), [id])
})
