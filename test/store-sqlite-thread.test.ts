// sqliteStore({ thread: true }): the SQLite store run by a worker thread. It must be the same store
// seen from the event loop: the contract, its errors as their classes, its secret as a Buffer, and
// a process that exits on its own once nothing waits on the store.
import { test } from 'tap'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { Worker } from 'node:worker_threads'
import { tempDir as makeTempDir } from './helpers/temp-dir.js'
import { runModuleScript } from './helpers/module-script.js'
import { runLabelStoreContract, sqliteStore, errors } from '../index.js'

const tempDir = (t: { teardown: (fn: () => void) => void }): string => makeTempDir(t, 'fcd-sqlite-thread-')

test('a SQLite store in its own thread passes the label store contract', async (t) => {
  const dir = tempDir(t)
  runLabelStoreContract(t, async () => sqliteStore({ path: join(dir, `${randomUUID()}.db`), thread: true }))
})

test('the thread option is checked where the store is made', async (t) => {
  const path = join(tempDir(t), 'x.db')
  t.throws(() => sqliteStore({ path, thread: 'yes' as never }), errors.FST_CUSTOMER_DATA_INVALID_OPTION)
  t.throws(() => sqliteStore({ path, thread: true, synchronous: 'OFF' as never }), errors.FST_CUSTOMER_DATA_INVALID_OPTION)
  t.throws(() => sqliteStore({ path, thread: true, nope: 1 } as never), /nope/)
})

test('errors from the thread arrive as the library\'s classes; the secret as a Buffer that survives reopening', async (t) => {
  const path = join(tempDir(t), 'labels.db')
  const store = sqliteStore({ path, thread: true })
  await t.rejects(store.label([]), errors.FST_CUSTOMER_DATA_CLOSED, 'a store not opened yet says it is closed')
  await store.open()
  const secret = await store.secret()
  t.ok(Buffer.isBuffer(secret) && secret.length >= 16, 'the secret is a Buffer')
  const now = Date.now()
  const bad = store.label([{ leaseId: 'l1', instance: 'i', customers: ['c'], kind: 'audio', id: 'a\u0000b', now, expiresAt: now + 1000 }])
  await t.rejects(bad, errors.FST_CUSTOMER_DATA_INVALID_RESOURCE, 'a resource id no store can hold')
  await store.label([{ leaseId: 'l2', instance: 'i', customers: ['c'], kind: 'audio', id: 'a1', now, expiresAt: now + 1000 }])
  t.same(await store.commit('l2', now), { status: 'committed' })
  await store.close()
  await t.rejects(store.getDeletion('i', randomUUID()), errors.FST_CUSTOMER_DATA_CLOSED, 'a closed store says so')
  await store.close() // twice is fine
  const again = sqliteStore({ path, thread: true })
  await again.open()
  t.ok((await again.secret()).equals(secret), 'the same secret after reopening')
  t.equal((await again.exportLabels('i', 'c', 10, null)).items.length, 1, 'the committed label is there')
  await again.close()
})

test('a script that awaits the store runs to the end, and exits on its own with the store left open', async (t) => {
  const path = join(tempDir(t), 'script.db')
  const code = `
    import { sqliteStore } from ${JSON.stringify(new URL('../dist/index.js', import.meta.url).href)}
    const store = sqliteStore({ path: ${JSON.stringify(path)}, thread: true })
    await store.open()
    const now = Date.now()
    await store.label([{ leaseId: 'l', instance: 'i', customers: ['c'], kind: 'audio', id: 'a', now, expiresAt: now + 60000 }])
    await store.commit('l', now)
    console.log('labeled')
    // no close: an idle store must not hold the process
  `
  const { out, exitCode } = await runModuleScript(code)
  t.equal(out, 'labeled', 'every await came back')
  t.equal(exitCode, 0, 'the process ended by itself')
})

test('one store per file in a process: a thread store holds the lock in the host\'s thread, so a second store is refused', async (t) => {
  const path = join(tempDir(t), 'locked.db')
  for (const [first, second] of [[true, true], [true, false], [false, true]]) {
    const a = sqliteStore({ path, thread: first })
    await a.open()
    await t.rejects(sqliteStore({ path, thread: second }).open(), /already open in another sqliteStore of this process/,
      `${first ? 'thread' : 'in-thread'} store first, ${second ? 'thread' : 'in-thread'} store second`)
    await a.close()
  }
  const again = sqliteStore({ path, thread: true })
  await again.open()
  await again.close()
  t.pass('after close the file opens again')
})

test('a thread that dies fails the call waiting on it and every later one, with the cause; the file stays locked until close', async (t) => {
  const path = join(tempDir(t), 'dies.db')
  // The store's thread, caught as it is made (its Worker is private to the store).
  const threads: Worker[] = []
  const unref = Worker.prototype.unref
  Worker.prototype.unref = function (this: Worker) { if (!threads.includes(this)) threads.push(this); unref.call(this) }
  t.teardown(() => { Worker.prototype.unref = unref })
  const store = sqliteStore({ path, thread: true })
  await store.open()
  Worker.prototype.unref = unref
  const now = Date.now()
  const waiting = store.label([{ leaseId: 'l1', instance: 'i', customers: ['c'], kind: 'audio', id: 'a', now, expiresAt: now + 60_000 }])
  await threads[threads.length - 1].terminate()
  await t.rejects(waiting, /the SQLite store's thread stopped .*restart the process/, 'the waiting call fails with the cause')
  await t.rejects(store.getDeletion('i', randomUUID()), /thread stopped/, 'and so does the next one')
  await t.rejects(store.open(), /thread stopped/, 'no new thread takes over the leases the old one held')
  await t.rejects(sqliteStore({ path }).open(), /already open/, 'the file stays locked')
  await store.close()
  const after = sqliteStore({ path })
  await after.open()
  await after.close()
})

test('a call whose arguments cannot be copied to the thread fails alone; two close() calls at once close once', async (t) => {
  const store = sqliteStore({ path: join(tempDir(t), 'clone.db'), thread: true })
  await store.open()
  const now = Date.now()
  const fine = store.label([{ leaseId: 'l1', instance: 'i', customers: ['c'], kind: 'audio', id: 'a', now, expiresAt: now + 60_000 }])
  const bad = store.withdraw({ instance: 'i', kind: 'audio', ids: ['a'], notData: () => {} } as never)
  await t.rejects(bad, /cannot be passed to the SQLite store's thread/)
  await t.resolves(fine, 'the call sent in the same turn goes through')
  await t.resolves(Promise.all([store.close(), store.close()]), 'both closes resolve')
  const inThread = sqliteStore({ path: join(tempDir(t), 'close.db') })
  await inThread.open()
  await t.resolves(Promise.all([inThread.close(), inThread.close()]), 'the in-thread store too')
})
