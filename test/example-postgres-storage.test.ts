// The fleet's body store: the example with DATABASE_URL keeps audio, corpora and grammars in chunked
// PostgreSQL rows, streamed in and out with the same limits as files.
import { test, type Test } from 'tap'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { request } from 'node:http'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { FastifyInstance } from 'fastify'
import { buildServer } from '../examples/app.js'
import { CHUNK_BYTES } from '../examples/storage/postgres-blobs.js'
import { pgSkipReason } from './helpers/pg.js'
import { createDatabase } from './helpers/pg-database.js'
import { killExample, startExample } from './helpers/example-process.js'
import { AUTH, KEY, api } from './helpers/example-customers.js'
import { wav } from './helpers/audio.js'

const skip = await pgSkipReason()

async function example (t: Test, databaseUrl?: string, limits = {}): Promise<{ app: FastifyInstance, base: string, dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'fcd-pg-storage-'))
  const app = await buildServer({ dataDir, apiKeys: { [KEY]: 'inst' }, databaseUrl, limits })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close(); rmSync(dataDir, { recursive: true, force: true }) })
  return { app, base: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, dataDir }
}

async function rowCount (url: string, table: string): Promise<number> {
  const c = new pg.Client({ connectionString: url })
  await c.connect()
  const { rows } = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)
  await c.end()
  return Number(rows[0].n)
}

test('audio over several chunks recognizes exactly as from a file', { skip }, async (t) => {
  const db = await createDatabase()
  t.teardown(db.drop)
  const fleet = await example(t, db.url)
  const single = await example(t)
  const audio = wav(10.3) // 330 KB: two chunks and an odd byte count past the header
  t.ok(audio.length > CHUNK_BYTES, 'crosses a chunk boundary')
  const results = []
  for (const { base } of [fleet, single]) {
    const res = await api(base, '/v1/recognize', { method: 'POST', headers: { 'content-type': 'audio/wav' }, body: audio })
    t.equal(res.status, 200)
    results.push(res.body)
  }
  t.same(results[0], results[1], 'the same result, metrics included')
  t.match(results[0], { audio_metrics: { accumulated: { end_time: 10.3, signal_level_rms: Number } } })
  t.equal(await rowCount(db.url, 'stt_example_blob_chunks'), Math.ceil(audio.length / CHUNK_BYTES), 'stored as chunked rows')
  t.same(readdirSync(fleet.dataDir), [], 'nothing in DATA_DIR')
})

test('over the limit: 413 and no chunk is kept; a replaced body leaves no chunk of the old one', { skip }, async (t) => {
  const db = await createDatabase()
  t.teardown(db.drop)
  const { base } = await example(t, db.url, { resourceBytes: CHUNK_BYTES * 2 })
  const json = { 'content-type': 'application/json' }
  const am = (await api(base, '/v1/acoustic_customizations', { method: 'POST', headers: json, body: JSON.stringify({ name: 'm', base_model_name: 'en-US_BroadbandModel' }) })).body.customization_id
  const big = await api(base, `/v1/acoustic_customizations/${am}/audio/a`, { method: 'POST', headers: { 'content-type': 'audio/wav', 'x-watson-metadata': 'customer_id=c' }, body: wav(20) })
  t.equal(big.status, 413)
  t.match(big.body, { code: 413, error: /larger than/ })
  t.equal(await rowCount(db.url, 'stt_example_blob_chunks'), 0, 'the chunks written before the limit are gone')

  const put = async (seconds: number): Promise<number> => (await api(base, `/v1/acoustic_customizations/${am}/audio/a?allow_overwrite=true`, { method: 'POST', headers: { 'content-type': 'audio/wav' }, body: wav(seconds) })).status
  t.equal(await put(6), 201)
  t.equal(await rowCount(db.url, 'stt_example_blob_chunks'), 1)
  t.equal(await put(12), 201)
  t.equal(await rowCount(db.url, 'stt_example_blob_chunks'), 2, 'only the new version (2 chunks) remains')
  t.equal(await rowCount(db.url, 'stt_example_blobs'), 1)
})

/** How much a fresh PostgreSQL-mode example's peak memory grows while it receives `size` bytes. */
async function peakGrowth (t: Test, size: number): Promise<number> {
  const db = await createDatabase()
  const dataDir = mkdtempSync(join(tmpdir(), 'fcd-pg-memory-'))
  const server = await startExample({ DATABASE_URL: db.url, DATA_DIR: dataDir, STT_API_KEYS: `${KEY}:inst` })
  t.teardown(async () => { await killExample(server); await db.drop(); rmSync(dataDir, { recursive: true, force: true }) })
  const peak = (): number => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.proc.pid as number}/status`, 'utf8'))?.[1]) * 1024
  const before = peak()
  const status = await new Promise<number>((resolve, reject) => {
    const req = request(`${server.url}/v1/recognize`, { method: 'POST', headers: { ...AUTH, 'content-type': 'audio/l16;rate=16000' } }, (res) => {
      res.resume()
      resolve(res.statusCode as number)
    })
    req.on('error', reject)
    pipeline(Readable.from((function * () { for (let sent = 0; sent < size; sent += 1 << 20) yield Buffer.alloc(Math.min(1 << 20, size - sent), 7) })()), req).catch(reject)
  })
  t.equal(status, 200, `${size / 1e6} MB recognized`)
  t.equal(await rowCount(db.url, 'stt_example_blob_chunks'), Math.ceil(size / CHUNK_BYTES), `${size / 1e6} MB stored in chunks`)
  return peak() - before
}

test('uploads to the fleet store are streamed: 90 MB costs no more memory than 10 MB', { skip }, async (t) => {
  const small = await peakGrowth(t, 10e6)
  const large = await peakGrowth(t, 90e6)
  // Holding the body would add ~80 MB; streaming adds only noise (the growth is fixed overhead).
  t.ok(large - small < 30e6, `peak memory grew ${(small / 1e6).toFixed(1)} MB for 10 MB and ${(large / 1e6).toFixed(1)} MB for 90 MB`)
})
