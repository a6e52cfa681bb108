// The example server driven by the official ibm-watson SDK, unchanged (docs/ARCHITECTURE.md, "The Watson wire").
import { test } from 'tap'
import { createServer, type Server } from 'node:http'
import { createHmac } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import SpeechToTextV1 from 'ibm-watson/speech-to-text/v1.js'
import { BasicAuthenticator } from 'ibm-watson/auth/index.js'
import type { FastifyInstance } from 'fastify'
import { buildServer } from '../examples/app.js'
import { FileStore } from '../examples/storage/file-blobs.js'
import { wav } from './helpers/audio.js'

const KEY1 = 'sdk-key-one'
const KEY2 = 'sdk-key-two'
const SECRET = 'callback-secret'

interface Notification { body: Record<string, unknown>, signatureOk: boolean }

/** A real callback server: answers challenges (signed) and collects job notifications. */
async function callbackServer (): Promise<{ server: Server, url: string, notifications: Notification[], waitFor: (n: (x: Notification) => boolean) => Promise<Notification> }> {
  const notifications: Notification[] = []
  const waiters: Array<() => void> = []
  const server = createServer((req, res) => {
    const url = new URL(req.url as string, 'http://x')
    if (req.method === 'GET') {
      const challenge = url.searchParams.get('challenge_string') ?? ''
      const expected = createHmac('sha256', SECRET).update(challenge).digest('base64')
      if (req.headers['x-callback-signature'] !== expected) { res.writeHead(401).end(); return }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(challenge)
      return
    }
    let body = ''
    req.on('data', (c) => { body += c })
    req.on('end', () => {
      const expected = createHmac('sha256', SECRET).update(body).digest('base64')
      notifications.push({ body: JSON.parse(body), signatureOk: req.headers['x-callback-signature'] === expected })
      for (const w of waiters.splice(0)) w()
      res.writeHead(200).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const waitFor = async (match: (x: Notification) => boolean): Promise<Notification> => {
    for (;;) {
      const found = notifications.find(match)
      if (found !== undefined) return found
      await new Promise<void>((resolve) => waiters.push(resolve))
    }
  }
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`, notifications, waitFor }
}

/** The HTTP status an SDK call ended with. */
async function statusOf (call: Promise<{ status: number }>): Promise<number> {
  try {
    return (await call).status
  } catch (err) {
    return (err as { status: number }).status
  }
}

function client (base: string, key: string): SpeechToTextV1 {
  return new SpeechToTextV1({ authenticator: new BasicAuthenticator({ username: 'apikey', password: key }), serviceUrl: base })
}

function filesUnder (dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true }).map(String).filter((f) => statSync(join(dir, f)).isFile())
  } catch {
    return []
  }
}

/** Everything a customer can store, through the SDK. Returns how to look each resource up again. */
async function storeEverything (stt: SpeechToTextV1, customer: string, hooks: Awaited<ReturnType<typeof callbackServer>>) {
  const headers = { 'X-Watson-Metadata': `customer_id=${customer}` }
  const audio = wav(0.5)
  const sync = await stt.recognize({ audio, contentType: 'audio/wav', headers })
  const ws = stt.recognizeUsingWebSocket({ contentType: 'audio/wav', xWatsonMetadata: `customer_id=${customer}`, objectMode: true })
  const wsResults: unknown[] = []
  ws.on('data', (d) => wsResults.push(d))
  await new Promise<void>((resolve, reject) => {
    ws.on('close', () => resolve())
    ws.on('error', reject)
    Readable.from([audio.subarray(0, 8000), audio.subarray(8000)]).pipe(ws)
  })
  await stt.registerCallback({ callbackUrl: hooks.url, userSecret: SECRET, headers })
  const job = await stt.createJob({ audio, contentType: 'audio/wav', callbackUrl: hooks.url, events: 'recognitions.completed_with_results', userToken: `token-${customer}`, headers })
  await hooks.waitFor((n) => n.body.id === job.result.id && n.body.event === 'recognitions.completed_with_results')
  const lm = await stt.createLanguageModel({ name: `lm-${customer}`, baseModelName: 'en-US_BroadbandModel' })
  const customizationId = lm.result.customization_id as string
  await stt.addCorpus({ customizationId, corpusName: 'corpus1', corpusFile: Buffer.from('hello world of speech\nsecond line'), headers })
  await stt.addWords({ customizationId, words: [{ word: 'IEEE', sounds_like: ['I triple E'], display_as: 'IEEE' }], headers })
  await stt.addWord({ customizationId, wordName: 'NCAA', soundsLike: ['N C double A'], headers })
  await stt.addGrammar({ customizationId, grammarName: 'yesno', grammarFile: Buffer.from('<grammar root="yn"><rule id="yn"><one-of><item>yes</item><item>no</item></one-of></rule></grammar>'), contentType: 'application/srgs+xml', headers })
  const am = await stt.createAcousticModel({ name: `am-${customer}`, baseModelName: 'en-US_BroadbandModel' })
  const acousticId = am.result.customization_id as string
  await stt.addAudio({ customizationId: acousticId, audioName: 'audio1', audioResource: audio, contentType: 'audio/wav', headers })
  return { sync: sync.result, wsResults, jobId: job.result.id as string, job: job.result, customizationId, acousticId }
}

test('the official ibm-watson SDK drives the example server; deleteUserData erases one customer only', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'fcd-sdk-'))
  const app: FastifyInstance = await buildServer({ dataDir, apiKeys: { [KEY1]: 'instance-1', [KEY2]: 'instance-2' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const hooks = await callbackServer()
  t.teardown(async () => {
    await app.close()
    hooks.server.close()
    rmSync(dataDir, { recursive: true, force: true })
  })
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const stt = client(`${base}/instances/instance-1`, KEY1) // its own Watson instance URL: the prefix is kept on every call
  const other = client(base, KEY2)

  const alice = await storeEverything(stt, 'alice', hooks)
  t.match(alice.sync, { result_index: 0, results: [{ final: true, alternatives: [{ transcript: /no speech model is configured: 0\.50 s/ }] }] })
  t.ok(alice.wsResults.some((r) => (r as { results?: unknown[] }).results !== undefined), 'the WebSocket session returned results')
  t.match(alice.job, { id: String, status: 'waiting', url: /\/instances\/instance-1\/v1\/recognitions\// })
  t.ok(hooks.notifications.every((n) => n.signatureOk), 'job notifications are signed with the user secret')
  const checked = await stt.checkJob({ id: alice.jobId })
  t.equal(checked.result.status, 'completed')
  t.ok(Array.isArray(checked.result.results), 'results is an array of recognition results')
  const words = (await stt.listWords({ customizationId: alice.customizationId })).result.words
  t.equal(words.length, 2)
  t.same(words.find((w) => w.word === 'IEEE')?.sounds_like, ['I triple E'], 'sounds_like as the SDK sends it')

  const bob = await storeEverything(stt, 'bob', hooks)
  const aliceElsewhere = await storeEverything(other, 'alice', hooks)
  const filesBefore = filesUnder(join(dataDir, 'files')).length

  const exported = await fetch(`${base}/v1/user_data?customer_id=alice&limit=1000`, { headers: { authorization: 'Basic ' + Buffer.from(`apikey:${KEY1}`).toString('base64') } })
  const kinds = new Set(((await exported.json()) as { resources: Array<{ kind: string }> }).resources.map((r) => r.kind))
  t.same([...kinds].sort(), ['audio', 'callback', 'corpus', 'grammar', 'job', 'recognition', 'word'], 'every labeled kind is exported')

  const deleted = await stt.deleteUserData({ customerId: 'alice' })
  t.equal(deleted.status, 200)
  t.match(deleted.result, { status: 'completed', erased: { recognition: 2, job: 1, callback: 1, corpus: 1, word: 2, grammar: 1, audio: 1 } })

  // Every labeled resource of alice in instance 1 is gone: 404 on its routes, no file left.
  t.equal(await statusOf(stt.checkJob({ id: alice.jobId })), 404)
  t.equal(await statusOf(stt.getCorpus({ customizationId: alice.customizationId, corpusName: 'corpus1' })), 404)
  t.equal(await statusOf(stt.getWord({ customizationId: alice.customizationId, wordName: 'IEEE' })), 404)
  t.equal(await statusOf(stt.getWord({ customizationId: alice.customizationId, wordName: 'NCAA' })), 404)
  t.equal(await statusOf(stt.getGrammar({ customizationId: alice.customizationId, grammarName: 'yesno' })), 404)
  t.equal(await statusOf(stt.getAudio({ customizationId: alice.acousticId, audioName: 'audio1' })), 404)
  t.equal((await stt.getLanguageModel({ customizationId: alice.customizationId })).status, 200, 'the model itself is not customer data')
  const filesAfter = filesUnder(join(dataDir, 'files')).length
  t.equal(filesBefore - filesAfter, 6, "alice's six files are gone: HTTP and WebSocket recognitions, job audio, corpus, grammar, acoustic audio")
  const files = new FileStore(dataDir)
  for (const [kind, id] of [['job', alice.jobId], ['corpus', `${alice.customizationId}/corpus1`], ['grammar', `${alice.customizationId}/yesno`], ['audio', `${alice.acousticId}/audio1`]]) {
    t.notOk(existsSync(files.path('instance-1', kind, id)), `no ${kind} file of alice`)
  }
  t.ok(existsSync(files.path('instance-1', 'job', bob.jobId)), "bob's job audio remains")

  // bob's, and alice's in the other instance, remain.
  t.equal((await stt.checkJob({ id: bob.jobId })).result.status, 'completed')
  t.equal((await stt.getWord({ customizationId: bob.customizationId, wordName: 'IEEE' })).status, 200)
  t.equal((await stt.getAudio({ customizationId: bob.acousticId, audioName: 'audio1' })).status, 200)
  t.equal((await other.checkJob({ id: aliceElsewhere.jobId })).result.status, 'completed')
  t.equal((await other.getCorpus({ customizationId: aliceElsewhere.customizationId, corpusName: 'corpus1' })).status, 200)

  // The callback registration was erased too: registering again creates it anew.
  t.equal((await stt.registerCallback({ callbackUrl: hooks.url, userSecret: SECRET })).status, 201)
})
