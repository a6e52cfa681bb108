// WalSync: the fsync of the WAL that acknowledges SQLite writes without blocking the event loop.
import { test, type Test } from 'tap'
import Database from 'better-sqlite3'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WalSync } from '../lib/stores/sqlite-wal-sync.js'
import { errors } from '../index.js'

function walDatabase (t: Test): { db: Database.Database, path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fcd-wal-'))
  const path = join(dir, 'w.db')
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.exec('CREATE TABLE t (x INTEGER)')
  t.teardown(() => { db.close(); rmSync(dir, { recursive: true, force: true }) })
  return { db, path }
}

test('every caller is acknowledged, callers during an fsync by the next one', async (t) => {
  const { db, path } = walDatabase(t)
  const wal = WalSync.open(path)
  const insert = db.prepare('INSERT INTO t VALUES (?)')
  const order: number[] = []
  const syncs = []
  for (let i = 0; i < 50; i++) {
    insert.run(i)
    syncs.push(wal.sync().then(() => { order.push(i) }))
    if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve)) // lets some fsyncs start in between
  }
  await Promise.all(syncs)
  t.same(order, Array.from({ length: 50 }, (_, i) => i), 'acknowledged in the order written')
  await wal.close()
})

test('close waits for the fsync in flight; a sync after close is refused', async (t) => {
  const { db, path } = walDatabase(t)
  const wal = WalSync.open(path)
  db.prepare('INSERT INTO t VALUES (1)').run()
  let acknowledged = false
  const pending = wal.sync().then(() => { acknowledged = true })
  await wal.close()
  t.ok(acknowledged, 'the write before close was acknowledged first')
  await pending
  await wal.close() // twice is harmless
  await t.rejects(wal.sync(), errors.FST_CUSTOMER_DATA_CLOSED)
})

test('opening a database that is not in WAL mode says so', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fcd-wal-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  t.throws(() => WalSync.open(join(dir, 'missing.db')), { code: 'ENOENT' })
})
