// After a completed deletion, the single-server example's files hold nothing of the customer: not
// documents.db, not its WAL (secure_delete zeroes the rows; a TRUNCATE checkpoint empties the WAL).
import { test } from 'tap'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { buildServer } from '../examples/app.js'
import { KEY, api, callbackServer, customer, dataDirBytes, findIn, storeEverything, textMarkers } from './helpers/example-customers.js'

test("documents.db and documents.db-wal keep no byte of a deleted customer's documents", async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'fcd-scrub-'))
  const app = await buildServer({ dataDir, apiKeys: { [KEY]: 'scrub-instance' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close(); rmSync(dataDir, { recursive: true, force: true }) })
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const callbackUrl = await callbackServer(t)
  const x = customer('xavier', 440)
  const y = customer('yvonne', 660)
  await storeEverything(t, base, x, callbackUrl)
  await storeEverything(t, base, y, callbackUrl + '?y')
  const docs = (): Buffer => Buffer.concat(['documents.db', 'documents.db-wal'].filter((f) => existsSync(join(dataDir, f))).map((f) => readFileSync(join(dataDir, f))))
  t.same(findIn(docs(), x).filter((m) => [x.word, x.soundsLike, x.corpus, x.secret].includes(m)).sort(), [x.word, x.soundsLike, x.corpus, x.secret].sort(),
    "before: X's word, sounds_like, corpus name and callback secret are in documents.db or its WAL")

  const del = await api(base, `/v1/user_data?customer_id=${x.id}`, { method: 'DELETE' })
  t.match(del.body, { status: 'completed', erased: { word: 1, corpus: 1, callback: 1 } })
  t.same(findIn(docs(), x), [], 'after: nothing of X in documents.db or documents.db-wal')
  t.same(findIn(dataDirBytes(dataDir), x), [], 'nor anywhere in DATA_DIR')
  t.same(readdirSync(dataDir).filter((f) => f.startsWith('documents.db')).sort(), ['documents.db', 'documents.db-shm', 'documents.db-wal'])
  t.same(findIn(docs(), y).filter((m) => textMarkers(y).includes(m)).includes(y.word), true, "Y's documents are still there")
  t.equal((await api(base, `/v1/user_data?customer_id=${y.id}`)).body.resources.length, 7, "Y's labels are intact")
})
