import { test } from 'tap'
import { memoryStore, runLabelStoreContract } from '../index.js'

test('memory store passes the label store contract', async (t) => {
  runLabelStoreContract(t, async () => memoryStore())
})

test('a closed memory store refuses calls', async (t) => {
  const store = memoryStore()
  await store.open()
  await store.close()
  await t.rejects(store.exportLabels('i', 'c', 1, null), { code: 'FST_CUSTOMER_DATA_CLOSED' })
})
