// The example server at LOG_LEVEL=trace, as a child process: everything it prints is searched for
// every customer ID, API key, secret and token it was sent. None may appear, at any level.
import { test } from 'tap'
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import { once } from 'node:events'
import WebSocket from 'ws'
import { startExampleChild } from './helpers/example-child.js'
import { wav } from './helpers/audio.js'

const unique = (what: string): string => `${what}${randomBytes(6).toString('hex')}`

test('at trace level the example prints no customer ID, API key, secret or token', async (t) => {
  const basicKey = unique('basickey')
  const bearerKey = unique('bearerkey')
  const tokenKey = unique('tokenkey')
  const ids = { header: unique('cidheader'), query: unique('cidquery'), ws: unique('cidws'), bad: unique('cidbad'), missing: unique('cidmissing') }
  const secret = unique('usersecret')
  const child = await startExampleChild({ LOG_LEVEL: 'trace', STT_API_KEYS: `${basicKey}:i1,${bearerKey}:i1,${tokenKey}:i1` })
  t.teardown(() => child.stop())
  const hook = createServer((req, res) => res.end(new URL(req.url as string, 'http://x').searchParams.get('challenge_string')))
  hook.listen(0, '127.0.0.1')
  await once(hook, 'listening')
  t.teardown(() => { hook.close() })
  const basic = { authorization: 'Basic ' + Buffer.from(`apikey:${basicKey}`).toString('base64') }
  const bearer = { authorization: `Bearer ${bearerKey}` }
  const { base } = child

  t.equal((await fetch(`${base}/v1/recognize`, { method: 'POST', headers: { ...basic, 'content-type': 'audio/wav', 'x-watson-metadata': `customer_id=${ids.header}` }, body: wav(0.1) })).status, 200)
  t.equal((await fetch(`${base}/v1/user_data?customer_id=${ids.query}`, { headers: bearer })).status, 200)
  t.equal((await fetch(`${base}/v1/user_data?customer_id=${ids.header}`, { method: 'DELETE', headers: bearer })).status, 200)
  t.equal((await fetch(`${base}/v1/recognize`, { method: 'POST', headers: { ...basic, 'x-watson-metadata': `customer_id=${ids.bad};oops` }, body: 'x' })).status, 400)
  t.equal((await fetch(`${base}/v1/nothing?customer_id=${ids.missing}`, { headers: basic })).status, 404)
  const callback = `http://127.0.0.1:${(hook.address() as { port: number }).port}/hook`
  t.equal((await fetch(`${base}/v1/register_callback?callback_url=${encodeURIComponent(callback)}&user_secret=${secret}`, { method: 'POST', headers: basic })).status, 201)

  const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/recognize?access_token=${tokenKey}&x-watson-metadata=customer_id%3D${ids.ws}`)
  const results = new Promise<void>((resolve) => ws.on('message', (m) => { if (JSON.parse(m.toString()).results !== undefined) resolve() }))
  await once(ws, 'open')
  ws.send(JSON.stringify({ action: 'start', 'content-type': 'audio/wav' }))
  ws.send(wav(0.1))
  ws.send(JSON.stringify({ action: 'stop' }))
  await results
  ws.close()
  await once(ws, 'close')
  await new Promise((resolve) => setTimeout(resolve, 300)) // the last lines are flushed

  const printed = child.output()
  t.ok(printed.split('\n').filter((l) => l.includes('"incoming request"')).length >= 7, 'the server logged every request')
  for (const [what, value] of Object.entries({ basicKey, bearerKey, tokenKey, secret, ...ids })) {
    t.notOk(printed.includes(value), `${what} is not in what the server printed`)
  }
  const basicCredential = basic.authorization.slice('Basic '.length)
  t.notOk(printed.includes(basicCredential), 'nor the base64 Basic credential')
})
