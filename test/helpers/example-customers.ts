// What a customer stores in the example server, each piece recognizable by its bytes, and searches
// for those bytes in files and database rows.
import type { Test } from 'tap'
import { createServer, type Server } from 'node:http'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { wav } from './audio.js'

export const KEY = 'example-key'
export const AUTH = { authorization: 'Basic ' + Buffer.from(`apikey:${KEY}`).toString('base64') }

/** What a customer stores, every piece recognizable by its bytes. */
export function customer (tag: string, hz: number) {
  const audio = wav(0.5, 16000) // rewritten with a tone only this customer has
  for (let i = 0; i < 8000; i++) audio.writeInt16LE(Math.round(9000 * Math.sin(2 * Math.PI * hz * i / 16000)), 44 + i * 2)
  return {
    id: `${tag}-customer-7f3a`,
    word: `${tag}wordname`,
    soundsLike: `${tag}soundslike`,
    corpus: `${tag}corpusname`,
    corpusText: `${tag}corpustext alpha beta ${tag}corpustext`,
    grammar: `${tag}grammarname`,
    grammarText: `<grammar>${tag}grammartext</grammar>`,
    secret: `${tag}usersecret`,
    audio,
    /** A stretch of the tone, as it would appear in a file or a bytea. */
    audioMarker: audio.subarray(4000, 4064)
  }
}
export type Customer = ReturnType<typeof customer>

export function textMarkers (c: Customer): string[] {
  return [c.id, c.word, c.soundsLike, c.corpus, c.corpusText, c.grammar, c.grammarText, c.secret]
}

/** Everything of `c` found in a DATA_DIR (file bytes) or in the database's live rows. */
export function findIn (bytes: Buffer | string, c: Customer): string[] {
  const haystack = typeof bytes === 'string' ? Buffer.from(bytes) : bytes
  // As bytes (files, text columns) or as the hex of a bytea column.
  const has = (m: Buffer): boolean => haystack.includes(m) || haystack.includes(m.toString('hex'))
  const found = textMarkers(c).filter((m) => has(Buffer.from(m)))
  if (has(c.audioMarker)) found.push('audio bytes')
  return found
}

export function dataDirBytes (dir: string): Buffer {
  const files = readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
  return Buffer.concat(files.map((e) => readFileSync(join(e.parentPath, e.name))))
}

export async function api (base: string, path: string, init: RequestInit & { customer?: string } = {}): Promise<{ status: number, body: any }> {
  const headers: Record<string, string> = { ...AUTH, ...(init.headers as Record<string, string>) }
  if (init.customer !== undefined) headers['x-watson-metadata'] = `customer_id=${init.customer}`
  const res = await fetch(base + path, { ...init, headers })
  const text = await res.text()
  return { status: res.status, body: text === '' ? null : JSON.parse(text) }
}

/** A callback endpoint that answers register_callback's challenge. */
export async function callbackServer (t: Test): Promise<string> {
  const server: Server = createServer((req, res) => {
    const challenge = new URL(req.url as string, 'http://x').searchParams.get('challenge_string')
    res.writeHead(200, { 'content-type': 'text/plain' }).end(challenge ?? '')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`
}

export interface Stored { lm: string, am: string, jobId: string, callbackUrl: string }

/** Stores one of each resource of `c` through `base`. */
export async function storeEverything (t: Test, base: string, c: Customer, callbackUrl: string): Promise<Stored> {
  const json = { 'content-type': 'application/json' }
  const lm = (await api(base, '/v1/customizations', { method: 'POST', headers: json, body: JSON.stringify({ name: 'model', base_model_name: 'en-US_BroadbandModel' }) })).body.customization_id
  const am = (await api(base, '/v1/acoustic_customizations', { method: 'POST', headers: json, body: JSON.stringify({ name: 'model', base_model_name: 'en-US_BroadbandModel' }) })).body.customization_id
  const steps: Array<[string, Promise<{ status: number }>]> = [
    ['corpus', api(base, `/v1/customizations/${lm}/corpora/${c.corpus}`, { method: 'POST', customer: c.id, headers: { 'content-type': 'text/plain' }, body: c.corpusText })],
    ['words', api(base, `/v1/customizations/${lm}/words`, { method: 'POST', customer: c.id, headers: json, body: JSON.stringify({ words: [{ word: c.word, sounds_like: [c.soundsLike] }] }) })],
    ['grammar', api(base, `/v1/customizations/${lm}/grammars/${c.grammar}`, { method: 'POST', customer: c.id, headers: { 'content-type': 'application/srgs' }, body: c.grammarText })],
    ['acoustic audio', api(base, `/v1/acoustic_customizations/${am}/audio/sample`, { method: 'POST', customer: c.id, headers: { 'content-type': 'audio/wav' }, body: c.audio })],
    ['recognition', api(base, '/v1/recognize', { method: 'POST', customer: c.id, headers: { 'content-type': 'audio/wav' }, body: c.audio })],
    ['callback', api(base, `/v1/register_callback?callback_url=${encodeURIComponent(callbackUrl)}&user_secret=${c.secret}`, { method: 'POST', customer: c.id })]
  ]
  for (const [what, done] of steps) t.ok([200, 201].includes((await done).status), `${c.id}: ${what} stored`)
  const job = await api(base, '/v1/recognitions', { method: 'POST', customer: c.id, headers: { 'content-type': 'audio/wav' }, body: c.audio })
  t.equal(job.status, 201, `${c.id}: job created`)
  let status = ''
  for (let i = 0; i < 200 && status !== 'completed'; i++) {
    status = (await api(base, `/v1/recognitions/${job.body.id}`)).body.status
    if (status !== 'completed') await sleep(25)
  }
  t.equal(status, 'completed', `${c.id}: the job ran`)
  return { lm, am, jobId: job.body.id, callbackUrl }
}

/** What a replica's API serves of a customer's resources (labels it exports are resources). */
export async function served (base: string, c: Customer, s: Stored): Promise<string[]> {
  const found: string[] = []
  const gets: Array<[string, string]> = [
    ['corpus', `/v1/customizations/${s.lm}/corpora/${c.corpus}`],
    ['word', `/v1/customizations/${s.lm}/words/${c.word}`],
    ['grammar', `/v1/customizations/${s.lm}/grammars/${c.grammar}`],
    ['acoustic audio', `/v1/acoustic_customizations/${s.am}/audio/sample`],
    ['job', `/v1/recognitions/${s.jobId}`]
  ]
  for (const [what, path] of gets) if ((await api(base, path)).status !== 404) found.push(what)
  const exported = await api(base, `/v1/user_data?customer_id=${c.id}`)
  if (exported.body.resources.length > 0) found.push(`${exported.body.resources.length} labeled resources`)
  return found
}
