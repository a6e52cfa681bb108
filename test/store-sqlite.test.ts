import { test } from 'tap'
import { readFileSync, existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { Worker } from 'node:worker_threads'
import { spawn } from 'node:child_process'
import Database from 'better-sqlite3'
import { tempDir as makeTempDir } from './helpers/temp-dir.js'
import { runModuleScript } from './helpers/module-script.js'
import { runLabelStoreContract, sqliteStore, errors, CustomerDataEngine } from '../index.js'
import { SQLITE_SCHEMA_VERSION } from '../lib/stores/sqlite.js'

const tempDir = (t: { teardown: (fn: () => void) => void }): string => makeTempDir(t, 'fcd-sqlite-')

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

// A host may run its servers in worker threads of one process, each making its own store. Only one
// of them may hold a file: their leases and claims live in each thread's memory.
test('a store in another thread of this process cannot open a file a store here holds', async (t) => {
  const path = join(tempDir(t), 'threads.db')
  const tryInThread = (): Promise<string> => new Promise((resolve, reject) => {
    const code = `import('node:worker_threads').then(async ({ parentPort, workerData }) => {
      const { sqliteStore } = await import(workerData.index)
      const store = sqliteStore({ path: workerData.path })
      try { await store.open(); await store.close(); parentPort.postMessage('opened') } catch (err) { parentPort.postMessage('refused ' + err.message) }
    })`
    const worker = new Worker(code, { eval: true, workerData: { path, index: new URL('../dist/index.js', import.meta.url).href } })
    worker.once('message', (m: string) => { resolve(m) })
    worker.once('error', reject)
  })
  const here = sqliteStore({ path })
  await here.open()
  t.match(await tryInThread(), /^refused .*already open in another sqliteStore of this process/, 'the other thread is refused')
  await here.close()
  t.equal(await tryInThread(), 'opened', 'once closed here, the other thread opens it')
})

/** The layout of version 2 (the last with state and lease columns), as it created its tables. */
const V2_LAYOUT = `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
  CREATE TABLE labels (seq INTEGER PRIMARY KEY AUTOINCREMENT, instance TEXT NOT NULL, customer TEXT NOT NULL, kind TEXT NOT NULL,
    rid TEXT NOT NULL, state INTEGER NOT NULL, lease_id TEXT, lease_expires INTEGER NOT NULL DEFAULT 0, labeled_at INTEGER NOT NULL);
  CREATE INDEX labels_by_customer ON labels (instance, customer, seq);
  CREATE INDEX labels_by_lease ON labels (lease_id) WHERE lease_id IS NOT NULL;
  CREATE INDEX labels_pending ON labels (instance, customer) WHERE state = 0;
  CREATE TABLE deletions (id TEXT PRIMARY KEY, instance TEXT NOT NULL, customer TEXT NOT NULL, cover_seq INTEGER NOT NULL,
    status TEXT NOT NULL, erased TEXT NOT NULL DEFAULT '{}', created_at INTEGER NOT NULL, completed_at INTEGER);
  CREATE UNIQUE INDEX deletions_running ON deletions (instance, customer) WHERE status = 'running';
  CREATE INDEX deletions_running_age ON deletions (created_at) WHERE status = 'running';
  PRAGMA user_version = 2;`

test('a file written by the version 2 layout migrates in place: its running deletion completes, its labels stay covered', async (t) => {
  const path = join(tempDir(t), 'v2.db')
  const old = new Database(path)
  old.pragma('journal_mode = WAL')
  old.exec(V2_LAYOUT)
  const now = Date.now()
  const insert = old.prepare('INSERT INTO labels (instance, customer, kind, rid, state, lease_id, lease_expires, labeled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
  // c: a committed label and a doomed one whose writer died, covered by a running deletion; then a
  // label still pending when the old process stopped. o: another customer's committed label.
  insert.run('i', 'c', 'audio', 'a1', 1, null, 0, now - 5000)
  insert.run('i', 'c', 'audio', 'dead', 2, 'L-dead', now + 60_000, now - 4000)
  insert.run('i', 'o', 'audio', 'o1', 1, null, 0, now - 3000)
  old.prepare("INSERT INTO deletions (id, instance, customer, cover_seq, status, created_at) VALUES ('D', 'i', 'c', 2, 'running', ?)").run(now - 2000)
  insert.run('i', 'c', 'audio', 'p1', 0, 'L-live', now + 60_000, now)
  old.close()

  const erased: string[] = []
  const store = sqliteStore({ path })
  const engine = new CustomerDataEngine({ store, reaperMs: 1e6, erasers: { audio: async (ids) => { erased.push(...ids) } } })
  await engine.start()
  t.teardown(() => engine.close())
  let rec = await store.getDeletion('i', 'D')
  for (let i = 0; i < 100 && rec?.status !== 'completed'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    rec = await store.getDeletion('i', 'D')
  }
  t.equal(rec?.status, 'completed', 'the deletion recorded by the old layout completes')
  t.same(rec?.erased, { audio: 2 })
  t.same(erased.sort(), ['a1', 'dead'], 'the doomed label of the writer that is gone is erased at once')
  t.same((await store.exportLabels('i', 'c', 10, null)).items.map((i) => i.id), ['p1'], 'the label written after the deletion stays, for the next one')
  t.same((await store.exportLabels('i', 'o', 10, null)).items.map((i) => i.id), ['o1'], 'other customers keep their labels')
  const { deletion } = await store.requestDeletion({ id: 'D2', instance: 'i', customer: 'c', now: Date.now() }) // 'c' is already a digest
  t.equal((await engine.awaitDeletion(deletion, 5000)).status, 'completed')
  t.same(erased.sort(), ['a1', 'dead', 'p1'], 'and a new deletion erases it')
})

// The checkpointer is code a thread evaluates: in a host started with --input-type=module it runs
// as an ES module, where require() does not exist. It used require, failed there without a word, and
// the WAL (erased rows included) was never checkpointed.
test('WAL checkpoints run in a host started as an ES module (--input-type=module)', async (t) => {
  const path = join(tempDir(t), 'esm.db')
  const code = `
    import { sqliteStore } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)}
    import { statSync } from 'node:fs'
    const store = sqliteStore({ path: ${JSON.stringify(path)} })
    await store.open()
    const now = Date.now()
    for (let i = 0; i < 50; i++) {
      await store.label([{ leaseId: 'l' + i, instance: 'i', customers: ['c' + i], kind: 'audio', id: 'a' + i, now, expiresAt: now + 60000 }])
      await store.commit('l' + i, now)
    }
    await store.compact()
    console.log(statSync(${JSON.stringify(path + '-wal')}).size)
    await store.close()
  `
  const { out, exitCode } = await runModuleScript(code)
  t.equal(out, '0', 'the TRUNCATE checkpoint emptied the WAL')
  t.equal(exitCode, 0)
})
