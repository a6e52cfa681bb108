// What the SDK cannot send: raw HTTP and raw WebSocket tests of the example server.
import { test, type Test } from 'tap'
import { mkdtempSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import WebSocket from 'ws'
import type { FastifyInstance } from 'fastify'
import { buildServer } from '../examples/app.js'
import { FileStore } from '../examples/storage/file-blobs.js'
import { wav } from './helpers/audio.js'

const KEY = 'raw-key'
const AUTH = { authorization: 'Basic ' + Buffer.from(`apikey:${KEY}`).toString('base64') }

async function server (t: { teardown: (fn: () => unknown) => void }, limits = {}): Promise<{ app: FastifyInstance, base: string, dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'fcd-example-'))
  const app = await buildServer({ dataDir, apiKeys: { [KEY]: 'inst' }, limits, customerData: { waitMs: 3000 } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close(); rmSync(dataDir, { recursive: true, force: true }) })
  return { app, base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, dataDir }
}

function watsonShape (t: Test, body: unknown, code: number, what: string): void {
  t.match(body, { code, error: String }, what)
}

test('bad input gets a Watson-shaped 4xx, never a 500', async (t) => {
  const { base } = await server(t)
  const cases: Array<[string, RequestInit & { url: string }, number]> = [
    ['no credentials', { url: '/v1/recognize', method: 'POST', body: wav() }, 401],
    ['wrong credentials', { url: '/v1/recognize', method: 'POST', body: wav(), headers: { authorization: 'Basic ' + Buffer.from('apikey:nope').toString('base64') } }, 401],
    ['malformed metadata', { url: '/v1/recognize', method: 'POST', body: wav(), headers: { ...AUTH, 'x-watson-metadata': 'customer_id=a=b', 'content-type': 'audio/wav' } }, 400],
    ['DELETE without customer_id', { url: '/v1/user_data', method: 'DELETE', headers: AUTH }, 400],
    ['DELETE with empty customer_id', { url: '/v1/user_data?customer_id=', method: 'DELETE', headers: AUTH }, 400],
    ['DELETE with two customer_ids', { url: '/v1/user_data?customer_id=a&customer_id=b', method: 'DELETE', headers: AUTH }, 400],
    ['unknown path', { url: '/v1/nothing-here', method: 'GET', headers: AUTH }, 404],
    ['empty audio', { url: '/v1/recognize', method: 'POST', body: Buffer.alloc(0), headers: { ...AUTH, 'content-type': 'audio/wav' } }, 400],
    ['undecodable audio', { url: '/v1/recognize', method: 'POST', body: Buffer.from('not audio'), headers: { ...AUTH, 'content-type': 'audio/flac' } }, 415],
    ['invalid JSON', { url: '/v1/customizations', method: 'POST', body: '{nope', headers: { ...AUTH, 'content-type': 'application/json' } }, 400],
    ['missing name', { url: '/v1/customizations', method: 'POST', body: '{}', headers: { ...AUTH, 'content-type': 'application/json' } }, 400],
    ['unknown model', { url: '/v1/customizations/nope/words', method: 'GET', headers: AUTH }, 404],
    ['unknown job', { url: '/v1/recognitions/nope', method: 'GET', headers: AUTH }, 404],
    ['unregistered callback', { url: '/v1/recognitions?callback_url=http://127.0.0.1:1/x', method: 'POST', body: wav(), headers: { ...AUTH, 'content-type': 'audio/wav' } }, 400],
    ['callback that does not answer', { url: '/v1/register_callback?callback_url=http://127.0.0.1:1/x', method: 'POST', headers: AUTH }, 400],
    ['bad results_ttl', { url: '/v1/recognitions?results_ttl=0', method: 'POST', body: wav(), headers: { ...AUTH, 'content-type': 'audio/wav' } }, 400],
    ['grammar for an unknown model', { url: '/v1/customizations/x/grammars/g', method: 'POST', body: 'x', headers: { ...AUTH, 'content-type': 'text/plain' } }, 404]
  ]
  for (const [name, { url, ...init }, status] of cases) {
    const res = await fetch(base + url, init)
    t.equal(res.status, status, name)
    watsonShape(t, await res.json(), status, name)
  }
})

test('a body-less JSON POST (as the SDK sends for train) is accepted', async (t) => {
  const { base } = await server(t)
  const created = await (await fetch(`${base}/v1/customizations`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'm', base_model_name: 'en-US_BroadbandModel' }) })).json() as { customization_id: string }
  const res = await fetch(`${base}/v1/customizations/${created.customization_id}/train`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json', 'content-length': '0' } })
  t.equal(res.status, 200)
})

test('oversized bodies: 413 in the Watson shape, nothing left on disk', async (t) => {
  const { base, dataDir } = await server(t, { recognizeBytes: 10_000, jobBytes: 10_000, jsonBytes: 100 })
  const big = wav(1) // 32 KB
  for (const url of ['/v1/recognize', '/v1/recognitions']) {
    const res = await fetch(base + url, { method: 'POST', body: big, headers: { ...AUTH, 'content-type': 'audio/wav', 'x-watson-metadata': 'customer_id=c' } })
    t.equal(res.status, 413, url)
    watsonShape(t, await res.json(), 413, url)
  }
  const form = new FormData()
  form.append('metadata', JSON.stringify({ part_content_type: 'audio/wav' }))
  form.append('upload', new Blob([big]), 'a.wav')
  const multi = await fetch(`${base}/v1/recognize`, { method: 'POST', body: form, headers: AUTH })
  t.equal(multi.status, 413, 'multipart upload over the limit')
  const json = await fetch(`${base}/v1/customizations`, { method: 'POST', body: JSON.stringify({ name: 'x'.repeat(200), base_model_name: 'b' }), headers: { ...AUTH, 'content-type': 'application/json' } })
  t.equal(json.status, 413, 'JSON over the limit')
  const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/recognize`, { headers: AUTH })
  const closed = await new Promise<{ code: number, error?: string }>((resolve) => {
    let error: string | undefined
    ws.on('open', () => { ws.send(JSON.stringify({ action: 'start', 'content-type': 'audio/wav' })); ws.send(big.subarray(0, 6000)); ws.send(big.subarray(6000, 12000)) })
    ws.on('message', (m) => { const msg = JSON.parse(m.toString()); if (msg.error !== undefined) error = msg.error })
    ws.on('close', (code) => resolve({ code, error }))
  })
  t.equal(closed.code, 1009, 'a WebSocket session over the limit closes with 1009')
  t.match(closed.error, /more than 10000 bytes/)
  const { readdirSync } = await import('node:fs')
  const left = existsSync(join(dataDir, 'files')) ? readdirSync(join(dataDir, 'files'), { recursive: true }).map(String).filter((f) => f.split('/').length === 3) : []
  t.same(left.filter((f) => !f.includes('/recognition/')), [], 'no partial upload was kept')
})

test('a WebSocket session whose customer is deleted gets an error frame, close 1011, and its data is erased', async (t) => {
  const { base, dataDir } = await server(t)
  const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/recognize?model=en-US_BroadbandModel&x-watson-metadata=customer_id%3Dcarol`, { headers: AUTH })
  const messages: Array<Record<string, unknown>> = []
  const closed = new Promise<number>((resolve) => ws.on('close', resolve))
  ws.on('message', (m) => messages.push(JSON.parse(m.toString())))
  await new Promise((resolve) => ws.on('open', resolve))
  ws.send(JSON.stringify({ action: 'start', 'content-type': 'audio/wav' }))
  ws.send(wav(0.25))
  for (let i = 0; i < 100 && messages.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(messages[0], { state: 'listening' })
  const exported = await (await fetch(`${base}/v1/user_data?customer_id=carol`, { headers: AUTH })).json() as { resources: Array<{ kind: string, id: string }> }
  t.equal(exported.resources.length, 1, 'the live session is labeled')
  const id = exported.resources[0].id
  const file = new FileStore(dataDir).path('inst', 'recognition', id)
  for (let i = 0; i < 100 && !existsSync(file); i++) await new Promise((resolve) => setTimeout(resolve, 10)) // the write stream opens asynchronously
  t.ok(existsSync(file), 'the session is storing audio')
  const del = await fetch(`${base}/v1/user_data?customer_id=carol`, { method: 'DELETE', headers: AUTH })
  t.equal(del.status, 200)
  t.equal(await closed, 1011)
  t.match(messages.at(-1), { error: /deleted during this session/ })
  t.same(((await del.json()) as { erased: unknown }).erased, { recognition: 1 })
  t.notOk(existsSync(new FileStore(dataDir).path('inst', 'recognition', id)), 'what the session stored is erased')
})

test("the README's curl commands work as pasted against the example server", async (t) => {
  const { base, dataDir } = await server(t)
  const run = promisify(execFile)
  const audio = join(dataDir, 'audio.wav')
  const { writeFileSync } = await import('node:fs')
  writeFileSync(audio, wav(0.5))
  const recognize = await run('curl', ['-s', '-X', 'POST', '-u', `apikey:${KEY}`, '--header', 'X-Watson-Metadata: customer_id=my_ID', '--header', 'Content-Type: audio/wav', '--data-binary', `@${audio}`, `${base}/v1/recognize`])
  t.match(JSON.parse(recognize.stdout), { results: [{ final: true }] })
  const del = await run('curl', ['-s', '-X', 'DELETE', '-u', `apikey:${KEY}`, `${base}/v1/user_data?customer_id=my_ID`])
  t.match(JSON.parse(del.stdout), { status: 'completed', erased: { recognition: 1 } })
})
