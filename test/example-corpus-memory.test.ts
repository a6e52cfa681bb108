// A 99 MB corpus of one-letter words, sent to the example server in a child process: its words are
// counted as the corpus streams to disk, so the server's peak memory stays bounded.
import { test } from 'tap'
import { Readable } from 'node:stream'
import { startExampleChild } from './helpers/example-child.js'

const KEY = 'corpus-key'
const AUTH = { authorization: 'Basic ' + Buffer.from(`apikey:${KEY}`).toString('base64') }
const CORPUS_BYTES = 99 * 1000 * 1000
/** Far under the +1.6 GB a whole-body split takes, far over what streaming needs. */
const PEAK_GROWTH_LIMIT_KB = 250 * 1024

test('a 99 MB corpus of one-letter words is counted streaming, with bounded memory', async (t) => {
  const child = await startExampleChild({ STT_API_KEYS: `${KEY}:i1` })
  t.teardown(() => child.stop())
  const model = await (await fetch(`${child.base}/v1/customizations`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'm', base_model_name: 'en-US_BroadbandModel' }) })).json() as { customization_id: string }
  const before = child.peakRssKb()

  const chunk = Buffer.from('a b c d e '.repeat(6500)) // 65,000 bytes, 32,500 words
  const chunks = Math.floor(CORPUS_BYTES / chunk.length)
  const body = Readable.from((function * () { for (let i = 0; i < chunks; i++) yield chunk })())
  const res = await fetch(`${child.base}/v1/customizations/${model.customization_id}/corpora/letters`, {
    method: 'POST', headers: { ...AUTH, 'content-type': 'text/plain' }, body: Readable.toWeb(body) as ReadableStream, duplex: 'half'
  } as RequestInit)
  t.equal(res.status, 201)
  const corpus = await (await fetch(`${child.base}/v1/customizations/${model.customization_id}/corpora/letters`, { headers: AUTH })).json()
  t.same(corpus, { name: 'letters', total_words: chunks * 32_500, out_of_vocabulary_words: 5, status: 'analyzed' }, 'every word counted')
  const growth = child.peakRssKb() - before
  t.ok(growth < PEAK_GROWTH_LIMIT_KB, `peak memory grew by ${Math.round(growth / 1024)} MB (limit ${PEAK_GROWTH_LIMIT_KB / 1024} MB)`)
})
