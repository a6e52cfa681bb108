// The behaviour every LabelStore must have (docs/ARCHITECTURE.md, "Stores"), as one suite that runs against any
// adapter: ours and a host's own. Pass a tap Test (or anything with test/equal/same/ok).
import { randomUUID } from 'node:crypto'
import type { LabelStore } from './store.js'

/** A tap Test, or anything with these methods. */

export interface ContractTest {
  test(name: string, fn: (t: any) => Promise<void>): unknown
  equal(actual: any, expected: any, ...message: any[]): unknown
  same(actual: any, expected: any, ...message: any[]): unknown
  ok(value: any, ...message: any[]): unknown
}

const LEASE = 60_000

async function withStore (makeStore: () => Promise<LabelStore>, fn: (store: LabelStore) => Promise<void>): Promise<void> {
  const store = await makeStore()
  await store.open()
  try {
    await fn(store)
  } finally {
    await store.close()
  }
}

async function labeled (store: LabelStore, instance: string, customers: string[], kind: string, id: string, now = Date.now()): Promise<string> {
  const leaseId = randomUUID()
  await store.label([{ leaseId, instance, customers, kind, id, now, expiresAt: now + LEASE }])
  return leaseId
}

async function committed (store: LabelStore, instance: string, customers: string[], kind: string, id: string): Promise<void> {
  const leaseId = await labeled(store, instance, customers, kind, id)
  const r = await store.commit(leaseId, Date.now())
  if (r.status !== 'committed') throw new Error('commit of a fresh lease failed: ' + r.status)
}

/** Drains a deletion the way the engine does; returns what was claimed. */
async function drain (store: LabelStore, deletionId: string, now = Date.now()): Promise<Array<{ kind: string, id: string }>> {
  const out = []
  for (;;) {
    const batch = await store.claimBatch(deletionId, { owner: 'w', limit: 2, now, claimUntil: now + 10_000 })
    if (batch.length === 0) return out
    const erased: Record<string, number> = {}
    for (const l of batch) erased[l.kind] = (erased[l.kind] ?? 0) + 1
    await store.completeBatch(deletionId, batch.map((l) => l.key), erased)
    out.push(...batch.map((l) => ({ kind: l.kind, id: l.id })))
  }
}

/** The code a promise rejects with, or 'resolved'. */
async function rejection (promise: Promise<unknown>): Promise<string> {
  try {
    await promise
    return 'resolved'
  } catch (err) {
    return String((err as { code?: string }).code)
  }
}

function sorted (items: Array<{ kind: string, id: string }>): string[] {
  return items.map((i) => `${i.kind}/${i.id}`).sort()
}

export function runLabelStoreContract (t: ContractTest, makeStore: () => Promise<LabelStore>): void {
  t.test('secret is stable and long enough', async (t: ContractTest) => withStore(makeStore, async (store) => {
    const a = await store.secret()
    const b = await store.secret()
    t.ok(Buffer.isBuffer(a) && a.length >= 16, 'secret has at least 16 bytes')
    t.same(a, b, 'same secret twice')
  }))

  t.test('labels are pending until committed; export pages in label order', async (t: ContractTest) => withStore(makeStore, async (store) => {
    const lease = await labeled(store, 'i1', ['c1'], 'audio', 'a0')
    let page = await store.exportLabels('i1', 'c1', 10, null)
    t.same(page.items.map((i) => [i.kind, i.id, i.state]), [['audio', 'a0', 'pending']])
    t.same(await store.commit(lease, Date.now()), { status: 'committed' })
    for (let n = 1; n < 5; n++) await committed(store, 'i1', ['c1'], 'audio', `a${n}`)
    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      page = await store.exportLabels('i1', 'c1', 2, cursor)
      seen.push(...page.items.map((i) => i.id))
      t.ok(page.items.every((i) => i.state === 'committed' && typeof i.labeledAt === 'number'))
      cursor = page.next
      pages++
    } while (cursor !== null && pages < 10)
    t.same(seen, ['a0', 'a1', 'a2', 'a3', 'a4'], 'every label once, oldest first')
    t.equal(pages, 3)
  }))

  t.test('a resource labeled twice has two labels, and one deletion takes both', async (t: ContractTest) => withStore(makeStore, async (store) => {
    await committed(store, 'i1', ['c1'], 'word', 'hello')
    await committed(store, 'i1', ['c1'], 'word', 'hello')
    const page = await store.exportLabels('i1', 'c1', 10, null)
    t.same(page.items.map((i) => `${i.kind}/${i.id}/${i.state}`), ['word/hello/committed', 'word/hello/committed'], 'each label is exported')
    const { deletion } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now: Date.now() })
    t.same(sorted(await drain(store, deletion.id)), ['word/hello', 'word/hello'], 'both labels are claimed')
    t.equal((await store.finishDeletion(deletion.id, Date.now()))?.status, 'completed')
    t.same((await store.exportLabels('i1', 'c1', 10, null)).items, [], 'nothing is left')
  }))

  t.test('export and deletion are isolated by instance and customer', async (t: ContractTest) => withStore(makeStore, async (store) => {
    await committed(store, 'i1', ['c1'], 'audio', 'x')
    await committed(store, 'i2', ['c1'], 'audio', 'y')
    await committed(store, 'i1', ['c2'], 'audio', 'z')
    t.same((await store.exportLabels('i2', 'c1', 10, null)).items.map((i) => i.id), ['y'])
    const { deletion } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now: Date.now() })
    t.same(sorted(await drain(store, deletion.id)), ['audio/x'])
    t.equal((await store.exportLabels('i2', 'c1', 10, null)).items.length, 1, 'other instance untouched')
    t.equal((await store.exportLabels('i1', 'c2', 10, null)).items.length, 1, 'other customer untouched')
    t.equal(await store.getDeletion('i2', deletion.id), null, 'another instance cannot see the deletion')
  }))

  t.test('a deletion covers committed labels and dooms pending ones', async (t: ContractTest) => withStore(makeStore, async (store) => {
    const doomNotices: string[] = []
    const off = store.onDoom((ids) => { doomNotices.push(...ids) })
    await committed(store, 'i1', ['c1'], 'corpus', 'k1')
    const live = await labeled(store, 'i1', ['c1', 'c2'], 'audio', 'live')
    const { deletion, created } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now: Date.now() })
    t.ok(created)
    t.equal(deletion.status, 'running')
    t.equal(deletion.customer, 'c1', 'the record keeps the digest it was given')
    for (let i = 0; i < 50 && doomNotices.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
    t.same(doomNotices, [live], 'the doomed lease is announced')
    t.same(await store.renew([live], Date.now() + LEASE), [live], 'renew reports the doomed lease')
    t.same(sorted(await drain(store, deletion.id)), ['corpus/k1'], 'a doomed label with a live lease waits for its writer')
    t.equal((await store.finishDeletion(deletion.id, Date.now()))?.status, 'running', 'not complete while a covered label remains')
    const commit = await store.commit(live, Date.now())
    t.same(commit, { status: 'doomed', resources: [{ kind: 'audio', id: 'live' }] })
    t.same(await store.dropLease(live, true), [{ id: deletion.id, instance: 'i1' }])
    const done = await store.finishDeletion(deletion.id, Date.now())
    t.equal(done?.status, 'completed')
    t.same(done?.erased, { corpus: 1, audio: 1 })
    t.ok(typeof done?.completedAt === 'number')
    t.equal((await store.exportLabels('i1', 'c2', 10, null)).items.length, 0, 'the shared resource was erased, so its other label went with the lease')
    t.same(await store.commit(live, Date.now()), { status: 'gone' })
    off()
  }))

  t.test('a doomed label whose lease expired is claimed (the reaper path)', async (t: ContractTest) => withStore(makeStore, async (store) => {
    const now = Date.now()
    await labeled(store, 'i1', ['c1'], 'job', 'j1', now)
    const { deletion } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now })
    t.equal((await drain(store, deletion.id, now)).length, 0)
    t.same(sorted(await drain(store, deletion.id, now + LEASE + 1)), ['job/j1'])
    t.equal((await store.finishDeletion(deletion.id, now + LEASE + 2))?.status, 'completed')
  }))

  t.test('claims: batch limit, other workers skip a live claim, the owner re-claims', async (t: ContractTest) => withStore(makeStore, async (store) => {
    for (let n = 0; n < 5; n++) await committed(store, 'i1', ['c1'], 'audio', `a${n}`)
    const { deletion } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now: Date.now() })
    const now = Date.now()
    const a = await store.claimBatch(deletion.id, { owner: 'A', limit: 3, now, claimUntil: now + 1000 })
    t.equal(a.length, 3)
    const b = await store.claimBatch(deletion.id, { owner: 'B', limit: 10, now, claimUntil: now + 1000 })
    t.equal(b.length, 2, 'B gets only the unclaimed labels')
    t.same(sorted(await store.claimBatch(deletion.id, { owner: 'A', limit: 3, now, claimUntil: now + 1000 })), sorted(a), 'A retries its own batch')
    const later = now + 2000
    t.equal((await store.claimBatch(deletion.id, { owner: 'C', limit: 10, now: later, claimUntil: later + 1000 })).length, 5, 'expired claims are free again')
  }))

  t.test('an unfinished deletion is joined, and the join covers labels made since', async (t: ContractTest) => withStore(makeStore, async (store) => {
    await committed(store, 'i1', ['c1'], 'audio', 'a1')
    const first = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now: Date.now() })
    await committed(store, 'i1', ['c1'], 'audio', 'a2')
    const second = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now: Date.now() })
    t.equal(second.created, false)
    t.equal(second.deletion.id, first.deletion.id)
    t.same(sorted(await drain(store, first.deletion.id)), ['audio/a1', 'audio/a2'])
    t.equal((await store.finishDeletion(first.deletion.id, Date.now()))?.status, 'completed')
    t.same(await store.runningDeletions(10), [])
    const third = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now: Date.now() })
    t.equal(third.created, true, 'after completion a new deletion is recorded')
    t.same(await store.runningDeletions(10), [{ id: third.deletion.id, instance: 'i1' }])
  }))

  t.test('a cover extended between batches is claimed before the deletion completes', async (t: ContractTest) => withStore(makeStore, async (store) => {
    for (const id of ['a1', 'a2', 'a3']) await committed(store, 'i1', ['c1'], 'audio', id)
    const { deletion } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now: Date.now() })
    const now = Date.now()
    const claim = (after: string | null) => store.claimBatch(deletion.id, { owner: 'w', limit: 2, now, after, claimUntil: now + 10_000 })
    const erase = async (batch: Array<{ key: string, kind: string, id: string }>): Promise<string[]> => {
      await store.completeBatch(deletion.id, batch.map((l) => l.key), { audio: batch.length })
      return batch.map((l) => l.id)
    }
    const first = await claim(null)
    t.equal(first.length, 2, 'a full batch')
    const erased = await erase(first)
    await committed(store, 'i1', ['c1'], 'audio', 'a4')
    const joined = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now: Date.now() })
    t.equal(joined.deletion.id, deletion.id, 'the second request joins and extends the cover')
    // The engine's way: go on past the last key; a short batch tries to finish, and any label left
    // sends it back to the start.
    let after: string | null = first[first.length - 1].key
    for (let pass = 0; pass < 10; pass++) {
      const batch = await claim(after)
      if (batch.length > 0) erased.push(...await erase(batch))
      if (batch.length === 2) { after = batch[batch.length - 1].key; continue }
      if ((await store.finishDeletion(deletion.id, Date.now()))?.status === 'completed') break
      after = null
    }
    t.same(erased.sort(), ['a1', 'a2', 'a3', 'a4'], 'the label made after the first batch, under the extended cover, is erased too')
    t.equal((await store.getDeletion('i1', deletion.id))?.status, 'completed')
    t.same((await store.exportLabels('i1', 'c1', 10, null)).items, [], 'nothing of the customer is left')
  }))

  t.test('concurrent identical deletions record one', async (t: ContractTest) => withStore(makeStore, async (store) => {
    await committed(store, 'i1', ['c1'], 'audio', 'a1')
    const results = await Promise.all(Array.from({ length: 10 }, () =>
      store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now: Date.now() })))
    t.equal(new Set(results.map((r) => r.deletion.id)).size, 1, 'one deletion id')
    t.equal(results.filter((r) => r.created).length, 1, 'created once')
  }))

  t.test('labels racing a deletion are either covered or not, never lost', async (t: ContractTest) => withStore(makeStore, async (store) => {
    const n = 40
    const leases = Array.from({ length: n }, () => randomUUID())
    const now = Date.now()
    const labelling = leases.map((leaseId, i) => store.label([{ leaseId, instance: 'i1', customers: ['c1'], kind: 'audio', id: `r${i}`, now, expiresAt: now + LEASE }]))
    const deleting = store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now })
    await Promise.all(labelling)
    const { deletion } = await deleting
    const outcomes = await Promise.all(leases.map((l) => store.commit(l, Date.now())))
    const doomed = outcomes.filter((o) => o.status === 'doomed').length
    const kept = (await store.exportLabels('i1', 'c1', 1000, null)).items.length
    t.equal(doomed + kept, n, 'every label is doomed or kept')
    for (const [i, o] of outcomes.entries()) if (o.status === 'doomed') await store.dropLease(leases[i], true)
    t.equal((await store.finishDeletion(deletion.id, Date.now()))?.status, 'completed')
  }))

  t.test('cancel withdraws labels without counting them as erased', async (t: ContractTest) => withStore(makeStore, async (store) => {
    const lease = await labeled(store, 'i1', ['c1'], 'audio', 'a1')
    const { deletion } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now: Date.now() })
    t.same(await store.dropLease(lease, false), [{ id: deletion.id, instance: 'i1' }])
    const done = await store.finishDeletion(deletion.id, Date.now())
    t.equal(done?.status, 'completed')
    t.same(done?.erased, {})
    const other = await labeled(store, 'i1', ['c3'], 'audio', 'a2')
    t.same(await store.dropLease(other, false), [])
    t.equal((await store.exportLabels('i1', 'c3', 10, null)).items.length, 0)
  }))

  t.test('renew keeps a lease alive and reports an unknown one', async (t: ContractTest) => withStore(makeStore, async (store) => {
    const now = Date.now()
    const lease = await labeled(store, 'i1', ['c1'], 'job', 'j', now)
    t.same(await store.renew([lease], now + 10 * LEASE), [])
    const { deletion } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now })
    t.equal((await drain(store, deletion.id, now + 2 * LEASE)).length, 0, 'the renewed lease is still live')
    t.same(await store.renew(['no-such-lease'], now), ['no-such-lease'])
  }))

  t.test('withdrawn: X\'s resource withdrawn, Y labels the same kind and id, X\'s deletion erases nothing of Y', async (t: ContractTest) => withStore(makeStore, async (store) => {
    await committed(store, 'i1', ['x'], 'word', 'hello')
    await committed(store, 'i1', ['x'], 'word', 'kept')
    await committed(store, 'i2', ['x'], 'word', 'hello')
    t.equal(await store.withdraw({ instance: 'i1', kind: 'word', ids: ['hello', 'never-labeled'] }), 1, 'one committed label removed')
    await committed(store, 'i1', ['y'], 'word', 'hello')
    const { deletion } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'x', now: Date.now() })
    t.same(sorted(await drain(store, deletion.id)), ['word/kept'], 'only what is still X\'s is erased')
    t.equal((await store.finishDeletion(deletion.id, Date.now()))?.status, 'completed')
    t.same((await store.exportLabels('i1', 'y', 10, null)).items.map((i) => i.id), ['hello'], 'Y keeps its label')
    t.same((await store.exportLabels('i2', 'x', 10, null)).items.map((i) => i.id), ['hello'], 'another instance is untouched')
  }))

  t.test('a replacing commit withdraws the other labels of the resource in the same step', async (t: ContractTest) => withStore(makeStore, async (store) => {
    await committed(store, 'i1', ['x'], 'corpus', 'c')
    await committed(store, 'i1', ['x'], 'corpus', 'other')
    const lease = await labeled(store, 'i1', ['y', 'z'], 'corpus', 'c')
    t.equal((await store.exportLabels('i1', 'x', 10, null)).items.length, 2, 'before the commit X still has both')
    t.same(await store.commit(lease, Date.now(), true), { status: 'committed' })
    t.same((await store.exportLabels('i1', 'x', 10, null)).items.map((i) => i.id), ['other'], 'X lost the replaced resource')
    t.same((await store.exportLabels('i1', 'y', 10, null)).items.map((i) => `${i.id}/${i.state}`), ['c/committed'])
    t.same((await store.exportLabels('i1', 'z', 10, null)).items.map((i) => `${i.id}/${i.state}`), ['c/committed'])
    const doomedLease = await labeled(store, 'i1', ['x'], 'corpus', 'other')
    await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'x', now: Date.now() })
    t.equal((await store.commit(doomedLease, Date.now(), true)).status, 'doomed', 'a doomed lease does not commit, replacing or not')
  }))

  t.test('withdrawing labels a running deletion covers or has claimed does not break it', async (t: ContractTest) => withStore(makeStore, async (store) => {
    for (const id of ['a1', 'a2', 'a3']) await committed(store, 'i1', ['x'], 'audio', id)
    const { deletion } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'x', now: Date.now() })
    const now = Date.now()
    const batch = await store.claimBatch(deletion.id, { owner: 'w', limit: 1, now, claimUntil: now + 10_000 })
    t.equal(batch.length, 1)
    const withdrawn = await store.withdraw({ instance: 'i1', kind: 'audio', ids: ['a1', 'a2'] })
    // The claimed label may be skipped (a store whose batch holds it is erasing it already).
    t.ok(withdrawn === 2 || withdrawn === 1, `the covered labels are withdrawn, the claimed one or not (${withdrawn})`)
    await store.completeBatch(deletion.id, batch.map((l) => l.key), { audio: 1 })
    t.same(sorted(await drain(store, deletion.id)), ['audio/a3'], 'the rest of the deletion goes on')
    const done = await store.finishDeletion(deletion.id, Date.now())
    t.equal(done?.status, 'completed')
    t.same(done?.erased, { audio: 2 })
  }))

  t.test('withdraw leaves pending and doomed labels to their writers', async (t: ContractTest) => withStore(makeStore, async (store) => {
    const pending = await labeled(store, 'i1', ['x'], 'job', 'j')
    t.equal(await store.withdraw({ instance: 'i1', kind: 'job', ids: ['j'] }), 0, 'a pending label stays')
    t.same(await store.commit(pending, Date.now()), { status: 'committed' })
    t.equal((await store.exportLabels('i1', 'x', 10, null)).items.length, 1)
    const doomed = await labeled(store, 'i1', ['y'], 'job', 'k')
    const { deletion } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'y', now: Date.now() })
    t.equal(await store.withdraw({ instance: 'i1', kind: 'job', ids: ['k'] }), 0, 'a doomed label stays')
    t.same(await store.commit(doomed, Date.now()), { status: 'doomed', resources: [{ kind: 'job', id: 'k' }] })
    await store.dropLease(doomed, true)
    t.equal((await store.finishDeletion(deletion.id, Date.now()))?.status, 'completed')
    t.equal(await store.withdraw({ instance: 'i1', kind: 'job', ids: ['j'], exceptLease: pending }), 1, 'once committed, it can be withdrawn')
  }))

  t.test('input no store can hold is refused before it reaches the store, the same way everywhere', async (t: ContractTest) => withStore(makeStore, async (store) => {
    await committed(store, 'i1', ['x'], 'audio', 'a')
    t.equal(await rejection(store.exportLabels('i1', 'x', 10, '99999999999999999999')), 'FST_CUSTOMER_DATA_BAD_REQUEST', 'a cursor beyond 64 bits')
    t.equal(await rejection(store.exportLabels('i1', 'x', 10, '9223372036854775808')), 'FST_CUSTOMER_DATA_BAD_REQUEST', 'a cursor just beyond bigint')
    t.equal(await rejection(store.exportLabels('i1', 'x', 10, '1e3')), 'FST_CUSTOMER_DATA_BAD_REQUEST', 'a cursor that is not a decimal seq')
    t.equal((await store.exportLabels('i1', 'x', 10, '9223372036854775807')).items.length, 0, 'the largest cursor is a valid empty page')
    t.equal(await store.getDeletion('i1', 'bad\u0000id'), null, 'a deletion id with NUL is simply not found')
    t.equal(await store.getDeletion('i\u0000', randomUUID()), null)
    const now = Date.now()
    t.equal(await rejection(store.label([{ leaseId: randomUUID(), instance: 'i1', customers: ['x'], kind: 'audio', id: 'a\u0000b', now, expiresAt: now + LEASE }])),
      'FST_CUSTOMER_DATA_INVALID_RESOURCE', 'a resource id with NUL')
    t.equal(await rejection(store.label([{ leaseId: randomUUID(), instance: 'i1', customers: ['x'], kind: 'au\u0000dio', id: 'a', now, expiresAt: now + LEASE }])),
      'FST_CUSTOMER_DATA_INVALID_RESOURCE', 'a kind with NUL')
    t.equal(await rejection(store.withdraw({ instance: 'i1', kind: 'audio', ids: ['\u0000'] })), 'FST_CUSTOMER_DATA_INVALID_RESOURCE', 'withdraw of an id with NUL')
    t.equal(await rejection(store.requestDeletion({ id: randomUUID(), instance: 'i\u0000', customer: 'x', now })), 'FST_CUSTOMER_DATA_INVALID_RESOURCE', 'an instance with NUL')
    t.same((await store.exportLabels('i1', 'x', 10, null)).items.map((i) => i.id), ['a'], 'nothing was written or lost')
  }))

  runOperationsContract(t, makeStore)
}

// --- Operations: the deletion list, progress, attempts and the running summary. ---
function runOperationsContract (t: ContractTest, makeStore: () => Promise<LabelStore>): void {
  t.test('deletions list newest first, filter by status, page, and stay within their instance', async (t: ContractTest) => withStore(makeStore, async (store) => {
    const base = Date.now()
    const ids: string[] = []
    for (let n = 0; n < 5; n++) {
      await committed(store, 'i1', [`c${n}`], 'audio', `a${n}`)
      const { deletion } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: `c${n}`, now: base + n })
      ids.push(deletion.id)
    }
    await store.requestDeletion({ id: randomUUID(), instance: 'i2', customer: 'c0', now: base + 10 })
    await drain(store, ids[1])
    await drain(store, ids[3])
    await store.finishDeletion(ids[1], base + 20)
    await store.finishDeletion(ids[3], base + 20)

    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const page = await store.listDeletions('i1', { limit: 2, cursor })
      t.ok(page.items.length <= 2, 'a page holds at most limit items')
      seen.push(...page.items.map((d) => d.id))
      cursor = page.next
      pages++
    } while (cursor !== null && pages < 10)
    t.same(seen, [...ids].reverse(), 'every deletion of the instance once, newest first')
    t.equal(pages, 3)

    const running = await store.listDeletions('i1', { status: 'running', limit: 10, cursor: null })
    t.same(running.items.map((d) => d.id), [ids[4], ids[2], ids[0]])
    t.ok(running.items.every((d) => d.status === 'running' && d.instance === 'i1'))
    t.equal(running.next, null)
    const completed = await store.listDeletions('i1', { status: 'completed', limit: 1, cursor: null })
    t.same(completed.items.map((d) => d.id), [ids[3]])
    t.same(completed.items[0].erased, { audio: 1 })
    const rest = await store.listDeletions('i1', { status: 'completed', limit: 1, cursor: completed.next })
    t.same(rest.items.map((d) => d.id), [ids[1]])
    t.equal((await store.listDeletions('i2', { limit: 10, cursor: null })).items.length, 1, 'the other instance sees only its own')
    t.same((await store.listDeletions('i3', { limit: 10, cursor: null })).items, [])
  }))

  t.test('progress counts covered labels and those waiting on a live writer', async (t: ContractTest) => withStore(makeStore, async (store) => {
    const now = Date.now()
    await committed(store, 'i1', ['c1'], 'audio', 'a1')
    await committed(store, 'i1', ['c1'], 'word', 'w1')
    const live = await labeled(store, 'i1', ['c1'], 'job', 'j1', now)
    const { deletion } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now })
    await committed(store, 'i1', ['c1'], 'audio', 'after') // labeled after the deletion: not covered
    t.same(await store.deletionProgress('i1', deletion.id, now), { remaining: 3, waiting: 1, attempts: 0, failures: {} })
    t.equal((await store.deletionProgress('i1', deletion.id, now + LEASE + 1))?.waiting, 0, 'an expired lease waits for nobody')
    t.equal(await store.deletionProgress('i2', deletion.id, now), null, 'another instance cannot see it')
    t.equal(await store.deletionProgress('i1', 'no-such-deletion', now), null)
    await drain(store, deletion.id, now)
    t.same(await store.deletionProgress('i1', deletion.id, now), { remaining: 1, waiting: 1, attempts: 0, failures: {} })
    await store.commit(live, now)
    await store.dropLease(live, true)
    await store.finishDeletion(deletion.id, now)
    t.same(await store.deletionProgress('i1', deletion.id, now), { remaining: 0, waiting: 0, attempts: 0, failures: {} })
  }))

  t.test('failed attempts keep each kind\'s last error and next retry until the deletion progresses', async (t: ContractTest) => withStore(makeStore, async (store) => {
    const now = Date.now()
    await committed(store, 'i1', ['c1'], 'audio', 'a1')
    const { deletion } = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now })
    await store.noteDeletionAttempt(deletion.id, { kind: 'audio', error: 'disk full', failedAt: now, nextRetryAt: now + 100 })
    await store.noteDeletionAttempt(deletion.id, { kind: 'word', error: 'x'.repeat(2000), failedAt: now + 1, nextRetryAt: now + 300 })
    await store.noteDeletionAttempt(deletion.id, { kind: 'audio', error: 'disk still full', failedAt: now + 2, nextRetryAt: now + 500 })
    await store.noteDeletionAttempt(deletion.id, { kind: null, error: 'store hiccup', failedAt: now + 3, nextRetryAt: now + 900 })
    const p = await store.deletionProgress('i1', deletion.id, now)
    t.equal(p?.attempts, 4, 'every failed attempt counts')
    t.same(p?.failures.audio, { error: 'disk still full', failedAt: now + 2, nextRetryAt: now + 500 }, 'the last error of the kind')
    t.equal(p?.failures.word.error.length, 500, 'a long message is cut')
    t.same(Object.keys(p?.failures ?? {}).sort(), ['audio', 'word'], 'a failure of no kind only counts')
    await store.noteDeletionAttempt(deletion.id, null)
    t.same(await store.deletionProgress('i1', deletion.id, now), { remaining: 1, waiting: 0, attempts: 0, failures: {} }, 'progress clears them')
    await store.noteDeletionAttempt(deletion.id, { kind: 'audio', error: 'again', failedAt: now, nextRetryAt: now + 100 })
    await drain(store, deletion.id, now)
    await store.finishDeletion(deletion.id, now)
    await store.noteDeletionAttempt(deletion.id, { kind: 'audio', error: 'late', failedAt: now, nextRetryAt: now + 100 })
    t.same(await store.deletionProgress('i1', deletion.id, now), { remaining: 0, waiting: 0, attempts: 0, failures: {} }, 'a completed deletion has nothing to retry')
    await store.noteDeletionAttempt('no-such-deletion', null)
  }))

  t.test('the running summary counts unfinished deletions and dates the oldest', async (t: ContractTest) => withStore(makeStore, async (store) => {
    const before = await store.runningSummary()
    const now = Date.now()
    const old = before.oldestCreatedAt ?? Infinity
    await committed(store, 'i1', ['c1'], 'audio', 'a1')
    const a = await store.requestDeletion({ id: randomUUID(), instance: 'i1', customer: 'c1', now: now - 5000 })
    await store.requestDeletion({ id: randomUUID(), instance: 'i2', customer: 'c2', now })
    const during = await store.runningSummary()
    t.equal(during.running, before.running + 2)
    t.equal(during.oldestCreatedAt, Math.min(old, now - 5000))
    await drain(store, a.deletion.id)
    await store.finishDeletion(a.deletion.id, now)
    const after = await store.runningSummary()
    t.equal(after.running, before.running + 1)
    t.equal(after.oldestCreatedAt, Math.min(old, now), 'a completed deletion is no longer the oldest')
  }))
}
