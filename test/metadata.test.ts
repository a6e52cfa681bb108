import { test } from 'tap'
import fc from 'fast-check'
import { parseCustomerMetadata, parseMetadataQuery, errors } from '../index.js'
import { parseMetadataHeader } from '../lib/metadata.js'
import { headerBytes, vectors } from './helpers/vectors.js'

const { FST_CUSTOMER_DATA_METADATA_INVALID } = errors

function outcome (fn: () => string[] | undefined): { ids?: string[], error?: true } {
  try {
    return { ids: fn() ?? [] }
  } catch (err) {
    if (err instanceof FST_CUSTOMER_DATA_METADATA_INVALID && err.statusCode === 400) return { error: true }
    throw err
  }
}

test('every header case of the shared vectors, on the pure parser', async (t) => {
  t.ok(vectors.header.length >= 30, 'the vectors file was loaded')
  for (const c of vectors.header) {
    const bytes = headerBytes(c)
    const expected = c.error === true ? { error: true } : { ids: c.ids }
    t.same(outcome(() => parseCustomerMetadata(bytes)), expected, `${c.name} (Buffer)`)
    t.same(outcome(() => parseMetadataHeader(bytes.toString('latin1'))), expected, `${c.name} (as Node hands over the header)`)
    if (c.header !== undefined) t.same(outcome(() => parseCustomerMetadata(c.header as string)), expected, `${c.name} (string)`)
  }
})

test('every query case of the shared vectors, on the pure parser', async (t) => {
  for (const c of vectors.query) {
    const expected = c.error === true ? { error: true } : { ids: c.ids }
    t.same(outcome(() => parseMetadataQuery(c.query)), expected, c.name)
  }
})

test('error messages name the header and never echo the customer ID', async (t) => {
  const secretId = 'very-secret-customer'
  for (const value of [`customer_id=${secretId}=x`, `customer_id=${secretId}\u0001`, `customer_id=${secretId}${'z'.repeat(300)}`]) {
    try {
      parseCustomerMetadata(value)
      t.fail('should throw')
    } catch (err) {
      const e = err as Error & { code: string }
      t.equal(e.code, 'FST_CUSTOMER_DATA_METADATA_INVALID')
      t.match(e.message, /X-Watson-Metadata header/)
      t.notMatch(e.message, secretId)
    }
  }
  t.throws(() => parseCustomerMetadata(42 as unknown as string), TypeError)
})

test('limits are options', async (t) => {
  t.same(parseCustomerMetadata('customer_id=abcd', { maxIdLength: 4 }), ['abcd'])
  t.throws(() => parseCustomerMetadata('customer_id=abcde', { maxIdLength: 4 }), /longer than 4 characters/)
  t.throws(() => parseCustomerMetadata('customer_id=a;customer_id=b', { maxIds: 1 }), /more than 1 customer IDs/)
  t.same(parseCustomerMetadata('customer_id=' + '日'.repeat(256)), ['日'.repeat(256)], 'length counts characters, not bytes')
  t.same(parseCustomerMetadata('customer_id=' + '😀'.repeat(256)), ['😀'.repeat(256)], 'astral characters count once')
  t.throws(() => parseCustomerMetadata('customer_id=\ud800'), /not valid Unicode/)
})

// What §3 allows as an ID: no control characters, no ";" or "=", no surrounding space/tab, 1–256 characters.
const allowedId = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 64 })
// eslint-disable-next-line no-control-regex
  .map((s) => s.replace(/[\u0000-\u001f\u007f;=]/g, '').replace(/^[ \t]+|[ \t]+$/g, ''))
  .filter((s) => s.length > 0 && [...s].length <= 256)

test('property: an allowed ID round-trips through the header and the query parameter', async (t) => {
  fc.assert(fc.property(allowedId, (id) => {
    const header = Buffer.from(`customer_id=${id}`, 'utf8').toString('latin1')
    const viaHeader = parseMetadataHeader(header)
    const viaQuery = parseMetadataQuery(`model=x&x-watson-metadata=${encodeURIComponent(`customer_id=${id}`)}`)
    return viaHeader.length === 1 && viaHeader[0] === id && viaQuery?.length === 1 && viaQuery[0] === id
  }), { numRuns: 5000, seed: 20261128 })
  t.pass('5000 IDs round-tripped')
})

test('fuzz: 100,000 inputs either parse or throw the coded 400, nothing else', async (t) => {
  const alphabet = ['customer_id', 'CUSTOMER_ID', '=', ';', ' ', '\t', '%', '%3D', '%3B', '%ZZ', '+', 'a', 'é', '日', '\u0000', '\u007f', '\n', ',', '\ud83d', 'x'.repeat(300)]
  const piece = fc.constantFrom(...alphabet)
  const structured = fc.array(piece, { maxLength: 40 }).map((parts) => parts.join(''))
  const input = fc.oneof(
    structured,
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.uint8Array({ maxLength: 5000 }).map((a) => Buffer.from(a)),
    fc.string({ maxLength: 5000 })
  )
  let parsed = 0
  let rejected = 0
  fc.assert(fc.property(input, (value) => {
    for (const attempt of [
      () => parseCustomerMetadata(value),
      () => parseMetadataQuery('x-watson-metadata=' + (typeof value === 'string' ? value : value.toString('latin1')))
    ]) {
      try {
        const ids = attempt() ?? []
        if (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string' || id.length === 0)) return false
        parsed++
      } catch (err) {
        if (!(err instanceof FST_CUSTOMER_DATA_METADATA_INVALID) || err.statusCode !== 400) return false
        rejected++
      }
    }
    return true
  }), { numRuns: 50_000, seed: 424242 })
  t.equal(parsed + rejected, 100_000, '100,000 parser calls')
  t.ok(parsed > 1000 && rejected > 1000, `both outcomes occur (parsed ${parsed}, rejected ${rejected})`)
})
