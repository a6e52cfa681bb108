// Outbound calls of the example server to callback URLs, against real HTTP servers: a bounded
// challenge reply, no redirects for the challenge or the signed notifications, and a URL length
// checked before anything is called.
import { test } from 'tap'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import { once } from 'node:events'
import { AUTH, startExample } from './helpers/example.js'
import { wav } from './helpers/audio.js'

interface Target { server: Server, url: string, requests: Array<{ method: string, url: string }> }

async function target (t: { teardown: (fn: () => unknown) => void }, handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<Target> {
  const requests: Target['requests'] = []
  const server = createServer((req, res) => {
    requests.push({ method: req.method as string, url: req.url as string })
    handle(req, res)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, requests }
}

const echo = (req: IncomingMessage, res: ServerResponse): void => {
  if (req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end(new URL(req.url as string, 'http://x').searchParams.get('challenge_string'))
  } else {
    req.resume()
    req.on('end', () => res.writeHead(200).end())
  }
}

async function register (base: string, url: string): Promise<Response> {
  return await fetch(`${base}/v1/register_callback?callback_url=${encodeURIComponent(url)}`, { method: 'POST', headers: AUTH })
}

test('a huge challenge reply is not read: the registration fails after a small, bounded read', async (t) => {
  const { base } = await startExample(t)
  const total = 300 * 1024 * 1024
  let sent = 0
  const hook = await target(t, (req, res) => {
    const challenge = new URL(req.url as string, 'http://x').searchParams.get('challenge_string') as string
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(total) })
    // The challenge, then 300 MB more: with backpressure, so `sent` counts what the example accepted.
    const chunk = Buffer.alloc(64 * 1024, 0x20)
    let first = true
    Readable.from((function * () {
      while (sent < total) {
        const out = first ? Buffer.concat([Buffer.from(challenge), chunk]).subarray(0, chunk.length) : chunk
        first = false
        sent += out.length
        yield out
      }
    })()).pipe(res).on('error', () => {})
    res.on('error', () => {})
  })
  const started = process.memoryUsage().rss
  const res = await register(base, hook.url)
  t.equal(res.status, 400, 'an oversized reply is not an echo')
  t.match(await res.json(), { code: 400, code_description: 'Bad Request', error: /challenge_string/ })
  t.ok(sent < 32 * 1024 * 1024, `the callback server could push ${(sent / 1048576).toFixed(1)} MB of its 300 MB before the example hung up`)
  t.ok(process.memoryUsage().rss - started < 100 * 1024 * 1024, 'and the example did not hold the reply in memory')
})

test('the challenge never follows a redirect: a 3xx is a failed registration', async (t) => {
  const { base } = await startExample(t)
  const elsewhere = await target(t, echo)
  const hook = await target(t, (req, res) => {
    res.writeHead(307, { location: elsewhere.url + '?' + new URL(req.url as string, 'http://x').searchParams.toString() }).end()
  })
  const res = await register(base, hook.url)
  t.equal(res.status, 400)
  t.equal(hook.requests.length, 1, 'the registered URL was asked once')
  t.same(elsewhere.requests, [], 'the redirect target was never called')
})

test('a notification never follows a redirect: the signed POST goes to the registered URL only', async (t) => {
  const { base } = await startExample(t)
  const elsewhere = await target(t, echo)
  let redirecting = false
  const hook = await target(t, (req, res) => {
    if (redirecting && req.method === 'POST') {
      req.resume()
      res.writeHead(307, { location: elsewhere.url }).end()
      return
    }
    echo(req, res)
  })
  t.equal((await register(base, hook.url)).status, 201)
  redirecting = true
  const job = await fetch(`${base}/v1/recognitions?callback_url=${encodeURIComponent(hook.url)}&events=recognitions.started`, {
    method: 'POST', headers: { ...AUTH, 'content-type': 'audio/wav' }, body: wav(0.2)
  })
  t.equal(job.status, 201)
  const deadline = Date.now() + 5000
  while (hook.requests.filter((r) => r.method === 'POST').length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(hook.requests.filter((r) => r.method === 'POST').length, 3, 'the notification was retried at the registered URL')
  t.same(elsewhere.requests, [], 'and never sent where the redirect pointed')
})

test('a callback URL over 1,024 characters is a 400 before it is called', async (t) => {
  const { base } = await startExample(t)
  const hook = await target(t, echo)
  const long = `${hook.url}?pad=${'x'.repeat(1100)}`
  const res = await register(base, long)
  t.equal(res.status, 400)
  t.match(await res.json(), { code: 400, code_description: 'Bad Request', error: /longer than 1024 characters/ })
  t.same(hook.requests, [], 'the URL was never called')
  const exact = `${hook.url}?pad=${'x'.repeat(1024 - hook.url.length - 5)}`
  t.equal(exact.length, 1024)
  t.equal((await register(base, exact)).status, 201, 'exactly 1,024 characters is accepted')
})
