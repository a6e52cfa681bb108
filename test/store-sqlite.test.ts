import { test } from 'tap'
import { mkdtempSync, rmSync, readFileSync, existsSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { spawn } from 'node:child_process'
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

test('a second process cannot open a file a live store holds; a dead one\'s lock is taken over', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'shared.db')
  const script = `
    import { sqliteStore } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)}
    const store = sqliteStore({ path: ${JSON.stringify(path)} })
    try { await store.open(); console.log('opened') } catch (err) { console.log('refused ' + err.message); process.exit(0) }
    process.stdin.on('data', async () => { await store.close(); console.log('closed'); process.exit(0) })
  `
  const start = (): { proc: ReturnType<typeof spawn>, line: Promise<string> } => {
    const proc = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] })
    const line = new Promise<string>((resolve) => { proc.stdout?.once('data', (c) => { resolve(String(c).trim()) }) })
    return { proc, line }
  }
  const holder = start()
  t.equal(await holder.line, 'opened', 'the first process opens the file')
  const second = sqliteStore({ path })
  await t.rejects(second.open(), { code: 'FST_CUSTOMER_DATA_INVALID_OPTION', message: new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is already open in process ${holder.proc.pid}.*use postgresStore`) })
  holder.proc.kill('SIGKILL') // dies without closing: its lock file stays behind
  await new Promise((resolve) => holder.proc.once('exit', resolve))
  await second.open()
  t.pass('the lock of a dead process is taken over')
  const third = start()
  t.match(await third.line, new RegExp(`^refused .*already open in process ${process.pid}`), 'and now another process is refused in turn')
  await second.close()
  const fourth = start()
  t.equal(await fourth.line, 'opened', 'a closed store lets the next process in')
  fourth.proc.stdin?.write('close\n')
  await new Promise((resolve) => fourth.proc.once('exit', resolve))
})
