// Every case of the shared parser vectors, when they exist beside the repository (CI has them; a
// stranger's clone does not, and runs the repository's own copy everywhere else).
import { test } from 'tap'
import { parseCustomerMetadata, parseMetadataQuery, errors } from '../index.js'
import { parseMetadataHeader, parseMetadataLines } from '../lib/metadata.js'
import { headerBytes, sharedVectors, SHARED_PATH, vectors as own } from './helpers/vectors.js'

function outcome (fn: () => string[] | undefined): { ids?: string[], error?: true } {
  try {
    return { ids: fn() ?? [] }
  } catch (err) {
    if (err instanceof errors.FST_CUSTOMER_DATA_METADATA_INVALID && err.statusCode === 400) return { error: true }
    throw err
  }
}

const shared = sharedVectors()

test('the shared vectors: every case on the parser', { skip: shared === null && process.env.CI !== 'true' ? `no shared vectors at ${SHARED_PATH} (a clone on its own runs test/fixtures/metadata-vectors.json)` : false }, async (t) => {
  if (shared === null) throw new Error(`CI runs with the shared vectors beside the repository, but ${SHARED_PATH} is missing`)
  t.ok(shared.header.length > 0 && shared.lines.length > 0, 'the shared file has header and lines cases')
  for (const c of shared.header) {
    const expected = c.error === true ? { error: true } : { ids: c.ids }
    t.same(outcome(() => parseCustomerMetadata(headerBytes(c))), expected, `header: ${c.name}`)
    t.same(outcome(() => parseMetadataHeader(headerBytes(c).toString('latin1'))), expected, `header as Node hands it over: ${c.name}`)
  }
  for (const c of shared.query) {
    t.same(outcome(() => parseMetadataQuery(c.query)), c.error === true ? { error: true } : { ids: c.ids }, `query: ${c.name}`)
  }
  for (const c of shared.lines) {
    const lines = c.lines.map((l) => Buffer.from(l, 'utf8').toString('latin1'))
    t.same(outcome(() => parseMetadataLines(lines)), c.error === true ? { error: true } : { ids: c.ids }, `lines: ${c.name}`)
  }
})

test('the repository\'s own lines cases, on the parser', async (t) => {
  t.ok(own.lines.length >= 8, 'the fixture was loaded')
  for (const c of own.lines) {
    const lines = c.lines.map((l) => Buffer.from(l, 'utf8').toString('latin1'))
    t.same(outcome(() => parseMetadataLines(lines)), c.error === true ? { error: true } : { ids: c.ids }, c.name)
  }
})
