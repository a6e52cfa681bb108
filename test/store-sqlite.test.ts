import { test } from 'tap'
import { mkdtempSync, rmSync, readFileSync, existsSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import Database from 'better-sqlite3'
import { runLabelStoreContract, sqliteStore, errors, CustomerDataEngine } from '../index.js'
import { SQLITE_SCHEMA_VERSION } from '../lib/stores/sqlite.js'

function tempDir (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'fcd-sqlite-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

test('SQLite store passes the label store contract', async (t) => {
  const dir = tempDir(t)
  runLabelStoreContract(t, async () => sqliteStore({ path: join(dir, `${randomUUID()}.db`) }))
})

test('an in-memory SQLite database (no WAL, nothing to fsync) passes the contract too', async (t) => {
  runLabelStoreContract(t, async () => sqliteStore({ path: ':memory:' }))
})

test('labels, deletions and the secret survive reopening the file', async (t) => {
  const path = join(tempDir(t), 'labels.db')
  const a = sqliteStore({ path })
  await a.open()
  const secret = await a.secret()
  await a.label([{ leaseId: 'l1', instance: 'i', customers: ['c'], kind: 'audio', id: 'x', now: 1, expiresAt: 2 }])
  t.same(await a.commit('l1', 3), { status: 'committed' })
  const { deletion } = await a.requestDeletion({ id: 'd1', instance: 'i', customer: 'other', now: 4 })
  await a.close()
  await a.close()
  const b = sqliteStore({ path })
  await b.open()
  t.same(await b.secret(), secret)
  t.equal((await b.exportLabels('i', 'c', 10, null)).items.length, 1)
  t.same(await b.runningDeletions(10), [{ id: deletion.id, instance: 'i' }])
  await b.close()
  const db = new Database(path, { readonly: true })
  t.equal(db.pragma('user_version', { simple: true }), SQLITE_SCHEMA_VERSION)
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal')
  db.close()
})

test('a database from a newer version is refused with a clear error', async (t) => {
  const path = join(tempDir(t), 'future.db')
  const db = new Database(path)
  db.pragma('user_version = 99')
  db.close()
  await t.rejects(sqliteStore({ path }).open(), /schema version 99, newer than/)
  t.throws(() => sqliteStore({} as never), errors.FST_CUSTOMER_DATA_INVALID_OPTION)
  t.throws(() => sqliteStore({ path, synchronous: 'OFF' as never }), errors.FST_CUSTOMER_DATA_INVALID_OPTION)
  const closed = sqliteStore({ path: join(tempDir(t), 'c.db') })
  await t.rejects(closed.label([]), errors.FST_CUSTOMER_DATA_CLOSED)
})

test('concurrent labels share one transaction (group commit)', async (t) => {
  const path = join(tempDir(t), 'group.db')
  const store = sqliteStore({ path, maxGroup: 64 })
  await store.open()
  t.teardown(() => store.close())
  const db = new Database(path, { readonly: true })
  t.teardown(() => db.close())
  const before = db.pragma('data_version', { simple: true })
  const now = Date.now()
  await Promise.all(Array.from({ length: 200 }, (_, i) =>
    store.label([{ leaseId: `l${i}`, instance: 'i', customers: ['c'], kind: 'audio', id: `a${i}`, now, expiresAt: now + 1000 }])))
  t.equal((await store.exportLabels('i', 'c', 1000, null)).items.length, 200)
  t.ok(Number(db.pragma('data_version', { simple: true })) > Number(before))
})

test('erased content lingers in no file the store controls', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'scrub.db')
  const marker = 'MARKER-' + randomUUID()
  const customer = 'CUSTOMER-' + randomUUID()
  const engine = new CustomerDataEngine({ store: sqliteStore({ path }), erasers: { audio: async () => {} }, reaperMs: 1e6 })
  await engine.start()
  for (let i = 0; i < 50; i++) await (await engine.label('inst', [customer], 'audio', `${marker}-${i}`)).commit()
  const rec = await engine.requestDeletion('inst', customer, 5000)
  t.equal(rec.status, 'completed')
  t.same(rec.erased, { audio: 50 })
  for (const file of [path, `${path}-wal`]) {
    if (existsSync(file)) t.notOk(readFileSync(file).includes(marker), `${file} holds no erased resource id`)
  }
  t.equal(existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0, 0, 'the WAL was checkpointed and truncated')
  t.notOk(readFileSync(path).includes(customer), 'the raw customer ID never reached the file')
  await engine.close()
})
