// sqliteStore({ thread: true }): the SQLite store run by a worker thread. It must be the same store
// seen from the event loop: the contract, its errors as their classes, its secret as a Buffer, and
// a process that exits on its own once nothing waits on the store.
import { test } from 'tap'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
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
