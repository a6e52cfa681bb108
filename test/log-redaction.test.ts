// Logs never carry a customer ID, API key, secret or token, at any level (issue 14 item 3): a host
// app at `trace`, with a serializer that logs headers as many hosts do, driven with every kind of
// secret over real sockets; then everything it printed is searched for each raw value.
import { test } from 'tap'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import customerData, { apiKeyInstances, memoryStore, errors } from '../index.js'
import { logRedactor, REDACTED_HEADERS, REDACTED_PARAMETERS } from '../lib/log-redaction.js'

const API_KEY = 'k3y-Th4t-Must-N0t-Leak'
const SECRETS = {
  customer: 'cust0mer-Id-N0t-In-Logs',
  customerWithQuote: 'quote"and&amp',
  apiKey: API_KEY,
  basic: Buffer.from(`apikey:${API_KEY}`).toString('base64'),
  userSecret: 'us3r-S3cret-Value',
  hostSecret: 'h0st-Named-Secret',
  cookie: 'sess10n-C00kie'
}

function capture (): { stream: Writable, text: () => string } {
  const chunks: string[] = []
  const stream = new Writable({ write (chunk, _enc, done) { chunks.push(String(chunk)); done() } })
  return { stream, text: () => chunks.join('') }
}

test('a trace-level host app logs none of the secrets, whoever logged them', async (t) => {
  const out = capture()
  const app = Fastify({
    logger: {
      level: 'trace',
      stream: out.stream,
      // Many hosts log whole headers and the raw URL.
      serializers: { req: (req: { method: string, url: string, headers: unknown }) => ({ method: req.method, url: req.url, headers: req.headers }) }
    }
  })
  await app.register(websocket)
  await app.register(customerData, {
    store: memoryStore(),
    instance: apiKeyInstances({ keys: { [API_KEY]: 'instance-1' } }),
    erasers: { word: async () => {} },
    redactParameters: ['host_secret'],
    waitMs: 1000
  })
  app.put('/words/:word', { config: { customerData: { kind: 'word', id: (r) => (r.params as { word: string }).word } } }, async (request, reply) => {
    request.log.trace({ headers: request.headers }, 'host logs the headers itself')
    return await reply.code(201).send({})
  })
  app.get('/v1/recognize', { websocket: true }, (socket) => { socket.close() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const basic = { authorization: `Basic ${SECRETS.basic}` }

  await fetch(`${base}/words/w1`, { method: 'PUT', headers: { ...basic, 'x-watson-metadata': `customer_id=${SECRETS.customer}`, cookie: `s=${SECRETS.cookie}` } })
  await fetch(`${base}/words/w2`, { method: 'PUT', headers: { authorization: `Bearer ${API_KEY}`, 'x-watson-metadata': `customer_id=${SECRETS.customer}` } })
  await fetch(`${base}/v1/user_data?customer_id=${encodeURIComponent(SECRETS.customer)}`, { headers: basic })
  await fetch(`${base}/v1/user_data?customer_id=${encodeURIComponent(SECRETS.customer)}`, { method: 'DELETE', headers: basic })
  await fetch(`${base}/v1/user_data?customer_id=${SECRETS.customerWithQuote.replace('&', '%26')}`, { method: 'DELETE', headers: basic })
  await fetch(`${base}/no/such/route?customer_id=${SECRETS.customer}&user_secret=${SECRETS.userSecret}&host_secret=${SECRETS.hostSecret}`)
  await fetch(`${base}/words/w3?user_secret=${SECRETS.userSecret}`, { method: 'PUT', headers: { 'x-watson-metadata': `customer_id=${SECRETS.customer}` } }) // 401
  await new Promise<void>((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${base.split(':')[2]}/v1/recognize?access_token=${API_KEY}&x-watson-metadata=customer_id%3D${SECRETS.customer}`)
    ws.on('close', () => { resolve() })
    ws.on('error', () => { resolve() })
  })

  const printed = out.text()
  t.ok(printed.includes('incoming request') && printed.includes('host logs the headers itself'), 'the app logged at trace')
  t.ok(printed.includes('[redacted]'), 'values were there to redact')
  for (const [name, value] of Object.entries(SECRETS)) {
    t.notOk(printed.includes(value), `${name} is not in the logs`)
    t.notOk(printed.includes(encodeURIComponent(value)), `${name} (URL-encoded) is not in the logs`)
  }
})

test('the scrubber on hostile lines', async (t) => {
  const redact = logRedactor([...REDACTED_PARAMETERS], [...REDACTED_HEADERS])
  const cases: Array<[string, string]> = [
    ['{"url":"/v1/user_data?customer_id=abc\\"def&x=1"}', 'abc'],
    ['{"url":"/v1/user_data?CUSTOMER_ID=abc"}', 'abc'],
    ['{"url":"/v1/user_data?customer%5Fid=abc"}', 'abc'],
    ['{"url":"/r?a=1&access_token=zq9#frag"}', 'zq9'],
    ['{"url":"/r?x-watson-metadata=customer_id%3Dabc"}', 'abc'],
    ['{"headers":{"authorization":"Basic QWxhZGRpbg==","host":"x"}}', 'QWxhZGRpbg'],
    ['{"headers":{"x-watson-metadata":"customer_id=a\\"b"}}', 'customer_id=a'],
    ['{"headers":{"set-cookie":["a=1","b=2"]}}', 'a=1'],
    ['Route GET:/x?user_secret=s3 not found', 's3'],
    ['authorization: Bearer tok2\r\nhost: x', 'tok2']
  ]
  for (const [line, secret] of cases) t.notOk(redact(line).includes(secret), `${line} → ${redact(line)}`)
  t.equal(redact('{"msg":"nothing here"}'), '{"msg":"nothing here"}', 'other lines are untouched')
})

test('a logger that is not pino is refused unless the host redacts it', async (t) => {
  const lines: unknown[] = []
  const logger = {
    level: 'info',
    info: (o: unknown) => { lines.push(o) },
    error: () => {},
    debug: () => {},
    fatal: () => {},
    warn: () => {},
    trace: () => {},
    silent: () => {},
    child () { return logger }
  }
  const options = { store: memoryStore(), instance: () => 'i', erasers: {} }
  const app = Fastify({ loggerInstance: logger as never })
  app.register(customerData, options)
  await t.rejects(async () => { await app.ready() }, errors.FST_CUSTOMER_DATA_INVALID_OPTION)
  const allowed = Fastify({ loggerInstance: logger as never })
  await allowed.register(customerData, { ...options, redactLogs: false })
  await allowed.close()
})
