// WebSocket sessions of the example server over a real socket: no open file per start message,
// and a session that ends without a result leaves no audio behind, labeled or not.
import { test } from 'tap'
import { readdirSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import WebSocket from 'ws'
import { AUTH, startExample, storedFiles, until } from './helpers/example.js'
import { wav } from './helpers/audio.js'

/** This process's open files: the server runs in it. */
const openFiles = (): number => readdirSync('/proc/self/fd').length

interface Session { ws: WebSocket, messages: Array<Record<string, unknown>>, closed: Promise<number> }

async function open (base: string, query = ''): Promise<Session> {
  const ws = new WebSocket(`${base.replace('http', 'ws')}/v1/recognize${query}`, { headers: AUTH })
  const messages: Array<Record<string, unknown>> = []
  ws.on('message', (m) => messages.push(JSON.parse(m.toString())))
  const closed = new Promise<number>((resolve) => ws.on('close', resolve))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  return { ws, messages, closed }
}

test('repeated start messages on one WebSocket open no file each: the second is a protocol error (1002)', async (t) => {
  const { base } = await startExample(t)
  const before = openFiles()
  const session = await open(base)
  for (let i = 0; i < 200; i++) session.ws.send(JSON.stringify({ action: 'start', 'content-type': 'audio/wav' }))
  const code = await Promise.race([session.closed, sleep(3000).then(() => null)])
  session.ws.close()
  await session.closed
  await sleep(300)
  t.ok(openFiles() - before <= 2, `open files after the session: ${openFiles() - before} more than before (200 would be one per start)`)
  t.equal(code, 1002, 'a start during a recognition closes the session with 1002')
  t.same(session.messages[0], { state: 'listening' }, 'the first start is answered')
  t.match(session.messages[1], { error: /already in progress/ }, 'the second gets an error frame saying why')
})

test('start, audio, stop, many times on one WebSocket: each recognition answers and nothing stays open', async (t) => {
  const { base, dataDir } = await startExample(t)
  const before = openFiles()
  const session = await open(base, '?x-watson-metadata=customer_id%3Dmany')
  for (let i = 0; i < 20; i++) {
    session.ws.send(JSON.stringify({ action: 'start', 'content-type': 'audio/wav' }))
    session.ws.send(wav(0.1))
    session.ws.send(JSON.stringify({ action: 'stop' }))
  }
  await until(() => session.messages.filter((m) => m.results !== undefined).length === 20)
  t.equal(session.messages.filter((m) => m.state === 'listening').length, 40, 'listening after every start and after every result')
  session.ws.close(1000)
  await session.closed
  t.equal(storedFiles(dataDir).length, 20, 'each recognition is stored as its own resource')
  await sleep(300)
  t.ok(openFiles() - before <= 2, `open files after the session: ${openFiles() - before} more than before`)
  const exported = await (await fetch(`${base}/v1/user_data?customer_id=many`, { headers: AUTH })).json() as { resources: unknown[] }
  t.equal(exported.resources.length, 20, 'each recognition is labeled')
})

for (const labeled of [true, false]) {
  const who = labeled ? 'a labeled' : 'an unlabeled'
  test(`${who} session that ends without a result leaves no audio: client gone, or closed with 1009`, async (t) => {
    const { base, dataDir } = await startExample(t, { recognizeBytes: 50_000 })
    const query = labeled ? '?x-watson-metadata=customer_id%3Dgone' : ''

    const left = await open(base, query)
    left.ws.send(JSON.stringify({ action: 'start', 'content-type': 'audio/wav' }))
    left.ws.send(wav(1).subarray(0, 20_000))
    await until(() => left.messages.length > 0 && storedFiles(dataDir).length === 1)
    left.ws.terminate() // the client vanishes mid-recognition
    await left.closed
    await until(() => storedFiles(dataDir).length === 0)
    t.same(storedFiles(dataDir), [], 'the audio of a session the client left is removed')

    const tooBig = await open(base, query)
    tooBig.ws.send(JSON.stringify({ action: 'start', 'content-type': 'audio/wav' }))
    for (let i = 0; i < 4; i++) tooBig.ws.send(wav(1).subarray(0, 20_000))
    t.equal(await tooBig.closed, 1009)
    await until(() => storedFiles(dataDir).length === 0)
    t.same(storedFiles(dataDir), [], 'the audio of a session closed with 1009 is removed')

    if (labeled) {
      // The lease is cancelled just after the file is removed: wait for it, then the export is empty.
      let resources: unknown[] = []
      for (const end = Date.now() + 5000; Date.now() < end; await new Promise((resolve) => setTimeout(resolve, 20))) {
        resources = ((await (await fetch(`${base}/v1/user_data?customer_id=gone`, { headers: AUTH })).json()) as { resources: unknown[] }).resources
        if (resources.length === 0) break
      }
      t.same(resources, [], 'and nothing stays labeled for data that is not kept')
    }
  })
}

test('the HTTP request and idle timeouts do not cut a WebSocket session that pauses longer than they allow', async (t) => {
  const { base } = await startExample(t, { idleTimeoutMs: 300, headersTimeoutMs: 200, requestTimeoutMs: 400 })
  const session = await open(base)
  await sleep(1200)
  session.ws.send(JSON.stringify({ action: 'start', 'content-type': 'audio/wav' }))
  session.ws.send(wav(0.1))
  session.ws.send(JSON.stringify({ action: 'stop' }))
  await until(() => session.messages.some((m) => m.results !== undefined))
  t.match(session.messages, [{ state: 'listening' }, { results: [{ final: true }] }, { state: 'listening' }], 'the paused session still recognizes')
  session.ws.close(1000)
  t.equal(await session.closed, 1000)
})
