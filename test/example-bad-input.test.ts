// Bad input against the example server over real sockets: always a Watson-shaped 4xx, never a 500,
// a reset connection or a hang.
import { test, type Test } from 'tap'
import { connect } from 'node:net'
import { AUTH, startExample, storedFiles } from './helpers/example.js'
import { wav } from './helpers/audio.js'

/** Writes `chunks` on one connection (waiting `gapMs` between them) and returns all it read until the server closed it or `waitMs` passed. */
async function rawExchange (port: number, chunks: Array<string | Buffer>, { gapMs = 0, waitMs = 3000 } = {}): Promise<{ text: string, closedBy: 'server' | 'reset' | 'timeout', ms: number }> {
  const started = Date.now()
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
    let done = false
    const finish = (closedBy: 'server' | 'reset' | 'timeout'): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ text, closedBy, ms: Date.now() - started })
    }
    const timer = setTimeout(() => finish('timeout'), waitMs)
    socket.on('data', (c) => { text += c.toString('latin1') })
    socket.on('error', () => finish('reset'))
    socket.on('end', () => finish('server'))
    socket.on('close', () => finish('server'))
    ;(async () => {
      for (const chunk of chunks) {
        if (done || socket.destroyed) return
        socket.write(chunk)
        if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs))
      }
    })().catch(() => {})
  })
}

const authLine = `Authorization: ${AUTH.authorization}\r\n`

function responses (text: string): Array<{ status: number, headers: string, body: string }> {
  const out = []
  let rest = text
  while (rest.startsWith('HTTP/1.1 ')) {
    const headEnd = rest.indexOf('\r\n\r\n')
    const headers = rest.slice(0, headEnd)
    const length = Number(/content-length: (\d+)/i.exec(headers)?.[1] ?? 0)
    out.push({ status: Number(headers.slice(9, 12)), headers, body: rest.slice(headEnd + 4, headEnd + 4 + length) })
    rest = rest.slice(headEnd + 4 + length)
  }
  return out
}

function watson (t: Test, res: { status: number, body: unknown }, status: number, what: string): void {
  t.equal(res.status, status, what)
  const body = typeof res.body === 'string' ? JSON.parse(res.body) : res.body
  t.match(body, { code: status, code_description: String, error: String }, `${what}: Watson-shaped`)
}

test('multipart with no boundary, multipart cut short, WAV headers cut at 25-30 bytes: 400, not 500', async (t) => {
  const { base, dataDir } = await startExample(t)
  const noBoundary = await fetch(`${base}/v1/recognize`, { method: 'POST', headers: { ...AUTH, 'content-type': 'multipart/form-data' }, body: 'hello' })
  watson(t, { status: noBoundary.status, body: await noBoundary.json() }, 400, 'multipart without a boundary')
  const cut = '--XX\r\nContent-Disposition: form-data; name="upload"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF'
  const truncated = await fetch(`${base}/v1/recognize`, { method: 'POST', headers: { ...AUTH, 'content-type': 'multipart/form-data; boundary=XX' }, body: cut })
  watson(t, { status: truncated.status, body: await truncated.json() }, 400, 'multipart without its closing boundary')
  for (let n = 25; n <= 30; n++) {
    const res = await fetch(`${base}/v1/recognize`, { method: 'POST', headers: { ...AUTH, 'content-type': 'audio/wav' }, body: wav(0.1).subarray(0, n) })
    watson(t, { status: res.status, body: await res.json() }, 400, `a WAV header cut at ${n} bytes`)
  }
  t.same(storedFiles(dataDir), [], 'nothing of the refused requests is kept')
})

test('401s and router errors (404, 414, bad URL, 413) are Watson-shaped', async (t) => {
  const { base, port } = await startExample(t)
  const noKey = await fetch(`${base}/v1/recognitions`)
  watson(t, { status: noKey.status, body: await noKey.json() }, 401, 'no credentials')
  const unknown = await fetch(`${base}/v1/nothing`, { headers: AUTH })
  t.same(await unknown.json(), { code: 404, code_description: 'No Such Resource', error: 'No such child resource.' }, 'unknown route')
  const tooLong = await fetch(`${base}/v1/customizations/x/words/${'a'.repeat(800)}`, { headers: AUTH })
  watson(t, { status: tooLong.status, body: await tooLong.json() }, 414, 'a path parameter over the router limit')
  const [badUrl] = responses((await rawExchange(port, [`GET /v1/customizations/%E0%A4%A HTTP/1.1\r\nHost: x\r\n${authLine}Connection: close\r\n\r\n`])).text)
  watson(t, badUrl, 400, 'a path that does not percent-decode')
  const big = await fetch(`${base}/v1/customizations`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x'.repeat(2e6) }) })
  watson(t, { status: big.status, body: await big.json() }, 413, 'a JSON body over 1 MB')
})

test('names of 101-256 characters are accepted, as Watson documents; 257 are a 400', async (t) => {
  const { base } = await startExample(t)
  const model = await (await fetch(`${base}/v1/customizations`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'm', base_model_name: 'en-US_BroadbandModel' }) })).json() as { customization_id: string }
  const words = `${base}/v1/customizations/${model.customization_id}/words`
  for (const name of ['a'.repeat(101), 'b'.repeat(256), 'é'.repeat(256), '€'.repeat(256), '?'.repeat(256), '%'.repeat(256)]) {
    const put = await fetch(`${words}/${encodeURIComponent(name)}`, { method: 'PUT', headers: { ...AUTH, 'content-type': 'application/json' }, body: '{}' })
    t.equal(put.status, 201, `a word of ${name.length} × ${name[0]}`)
    const got = await (await fetch(`${words}/${encodeURIComponent(name)}`, { headers: AUTH })).json() as { word: string }
    t.equal(got.word, name, 'and it reads back')
  }
  const over = await fetch(`${words}/${'c'.repeat(257)}`, { method: 'PUT', headers: { ...AUTH, 'content-type': 'application/json' }, body: '{}' })
  watson(t, { status: over.status, body: await over.json() }, 400, '257 characters')
})

test('POST /words stores all of its words or none', async (t) => {
  const { base } = await startExample(t)
  const model = await (await fetch(`${base}/v1/customizations`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'm', base_model_name: 'en-US_BroadbandModel' }) })).json() as { customization_id: string }
  const words = `${base}/v1/customizations/${model.customization_id}/words`
  const res = await fetch(words, {
    method: 'POST',
    headers: { ...AUTH, 'content-type': 'application/json', 'x-watson-metadata': 'customer_id=w' },
    body: JSON.stringify({ words: [{ word: 'fine' }, { word: 'also_fine', sounds_like: ['x'] }, { word: 'bad', sounds_like: 'not an array' }] })
  })
  watson(t, { status: res.status, body: await res.json() }, 400, 'a later word is invalid')
  t.same(await (await fetch(words, { headers: AUTH })).json(), { words: [] }, 'no word was stored')
  const exported = await (await fetch(`${base}/v1/user_data?customer_id=w`, { headers: AUTH })).json() as { resources: unknown[] }
  t.same(exported.resources, [], 'and none was labeled')
})

test("an /instances/:instance_id/ path naming another instance is a 404, never served with the caller's instance", async (t) => {
  const { base } = await startExample(t)
  const other = { authorization: 'Basic ' + Buffer.from('apikey:other-key').toString('base64') }
  await fetch(`${base}/v1/customizations`, { method: 'POST', headers: { ...other, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'theirs', base_model_name: 'en-US_BroadbandModel' }) })
  await fetch(`${base}/v1/customizations`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'mine', base_model_name: 'en-US_BroadbandModel' }) })
  const crossed = await fetch(`${base}/instances/other/v1/customizations`, { headers: AUTH })
  watson(t, { status: crossed.status, body: await crossed.json() }, 404, "another instance's URL")
  const crossedDelete = await fetch(`${base}/instances/other/v1/user_data?customer_id=x`, { method: 'DELETE', headers: AUTH })
  t.equal(crossedDelete.status, 404, "another instance's user_data route too")
  const own = await (await fetch(`${base}/instances/inst/v1/customizations`, { headers: AUTH })).json() as { customizations: Array<{ name: string }> }
  t.same(own.customizations.map((c) => c.name), ['mine'], 'its own instance URL serves its own data')
})

test('after a 413 the next request on the same connection is answered, not reset', async (t) => {
  const { port } = await startExample(t, { recognizeBytes: 10_000, jsonBytes: 1000 })
  const next = `GET /v1/recognitions HTTP/1.1\r\nHost: x\r\n${authLine}Connection: close\r\n\r\n`
  for (const [what, head, body] of [
    ['audio over its limit', 'POST /v1/recognize HTTP/1.1\r\nContent-Type: audio/wav\r\n', wav(28)], // 900 KB: more than the socket buffers hold
    ['JSON over its limit', 'POST /v1/customizations HTTP/1.1\r\nContent-Type: application/json\r\n', Buffer.from(JSON.stringify({ name: 'x'.repeat(900_000) }))]
  ] as const) {
    const { text, closedBy } = await rawExchange(port, [`${head}Host: x\r\n${authLine}Content-Length: ${body.length}\r\n\r\n`, body, next])
    const got = responses(text)
    t.equal(closedBy, 'server', `${what}: the server ends the connection cleanly`)
    t.same(got.map((r) => r.status), [413, 200], `${what}: 413, then the next request's answer`)
  }
  const { text, closedBy } = await rawExchange(port, ['POST /v1/recognize HTTP/1.1\r\nContent-Type: audio/wav\r\nHost: x\r\n' + authLine + 'Content-Length: 5000000\r\n\r\n', wav(1)])
  t.equal(closedBy, 'server', 'a large remainder: the connection is closed, not reset')
  t.match(responses(text)[0], { status: 413, headers: /connection: close/i }, 'and the 413 says Connection: close')
})

test('slow headers and slow bodies are cut with a Watson-shaped 408', async (t) => {
  const { port, dataDir } = await startExample(t, { headersTimeoutMs: 1000, requestTimeoutMs: 2000 })
  const slowHeaders = await rawExchange(port, ['POST /v1/recognize HTTP/1.1\r\n', 'Host: x\r\n', 'X-Pad: 1\r\n', 'X-Pad: 2\r\n', 'X-Pad: 3\r\n', 'X-Pad: 4\r\n', 'X-Pad: 5\r\n', 'X-Pad: 6\r\n', 'X-Pad: 7\r\n', 'X-Pad: 8\r\n'], { gapMs: 400, waitMs: 6000 })
  t.not(slowHeaders.closedBy, 'timeout', `headers trickled in: the server hung up after ${slowHeaders.ms} ms`)
  watson(t, responses(slowHeaders.text)[0], 408, 'slow headers')
  const drip = Array.from({ length: 40 }, () => Buffer.alloc(100))
  const slowBody = await rawExchange(port, [`POST /v1/recognize HTTP/1.1\r\nHost: x\r\n${authLine}Content-Type: audio/wav\r\nX-Watson-Metadata: customer_id=slow\r\nContent-Length: 100000\r\n\r\n`, ...drip], { gapMs: 200, waitMs: 7000 })
  t.not(slowBody.closedBy, 'timeout', `a body trickled in: the server hung up after ${slowBody.ms} ms`)
  watson(t, responses(slowBody.text)[0], 408, 'a slow body')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(storedFiles(dataDir), [], 'the partial upload is removed')
})
