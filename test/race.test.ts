// Randomized race test (docs/ARCHITECTURE.md, "Invariants": Complete and Isolated): writers label → write →
// commit with random interleavings while deletions are recorded; after everything settles, the
// host storage is checked against a model of what each deletion must have erased.
import { test, type Test } from 'tap'
import { setImmediate as tick } from 'node:timers/promises'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CustomerDataEngine, memoryStore, sqliteStore, errors, type LabelStore } from '../index.js'

function prng (seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

async function hops (rand: () => number, max = 4): Promise<void> {
  for (let n = Math.floor(rand() * max); n > 0; n--) await tick()
}

interface Writer { key: string, instance: string, customer: string, labeledAt: number, committed: boolean, doomed: boolean }
interface Deletion { instance: string, customer: string, calledAt: number, recordedAt: number }

async function schedule (seed: number, makeStore: () => LabelStore): Promise<string | null> {
  const rand = prng(seed)
  let clock = 0 // logical time: increments at every observed event
  const storage = new Set<string>()
  const engine = new CustomerDataEngine({
    store: makeStore(),
    batchSize: 1 + Math.floor(rand() * 4),
    reaperMs: 1_000_000,
    erasers: Object.fromEntries(['audio', 'job'].map((kind) => [kind, async (ids: string[], { instance }: { instance: string }) => {
      await hops(rand)
      for (const id of ids) storage.delete(`${instance}/${kind}/${id}`)
    }]))
  })
  await engine.start()
  const customers = ['a', 'b', 'c']
  const instances = ['i1', 'i2']
  const writers: Writer[] = []
  const deletions: Deletion[] = []
  const tasks: Array<Promise<void>> = []
  const nWriters = 4 + Math.floor(rand() * 8)
  const nDeletions = 1 + Math.floor(rand() * 3)
  for (let w = 0; w < nWriters; w++) {
    tasks.push((async () => {
      await hops(rand, 6)
      const instance = instances[Math.floor(rand() * 2)]
      const customer = customers[Math.floor(rand() * 3)]
      const kind = rand() < 0.5 ? 'audio' : 'job'
      const id = `w${w}`
      const lease = await engine.label(instance, [customer], kind, id)
      const writer: Writer = { key: `${instance}/${kind}/${id}`, instance, customer, labeledAt: ++clock, committed: false, doomed: false }
      writers.push(writer)
      await hops(rand)
      const obeysSignal = rand() < 0.5
      if (!(obeysSignal && lease.signal.aborted)) storage.add(writer.key) // some writers ignore the signal
      await hops(rand)
      try {
        await lease.commit()
        writer.committed = true
      } catch (err) {
        if (!(err instanceof errors.FST_CUSTOMER_DATA_LEASE_DOOMED)) throw err
        writer.doomed = true
      }
    })())
  }
  for (let d = 0; d < nDeletions; d++) {
    tasks.push((async () => {
      await hops(rand, 8)
      const instance = instances[Math.floor(rand() * 2)]
      const customer = customers[Math.floor(rand() * 3)]
      const calledAt = ++clock
      await engine.requestDeletion(instance, customer, 0)
      deletions.push({ instance, customer, calledAt, recordedAt: ++clock })
    })())
  }
  // The reaper runs while writers write, as it does in production.
  tasks.push((async () => {
    for (let n = 0; n < 6; n++) {
      await hops(rand, 8)
      await engine.reap()
    }
  })())
  await Promise.all(tasks)
  // Every writer has ended; drive every deletion to completion.
  for (let i = 0; i < 100; i++) {
    await engine.reap()
    if ((await engine.store.runningDeletions(10)).length === 0) break
  }
  const unfinished = (await engine.store.runningDeletions(10)).length
  await engine.close()
  if (unfinished > 0) return `${unfinished} deletion(s) never completed`

  for (const w of writers) {
    const mine = deletions.filter((d) => d.instance === w.instance && d.customer === w.customer)
    const mustBeErased = mine.some((d) => w.labeledAt < d.calledAt)
    const mayBeErased = mine.some((d) => w.labeledAt < d.recordedAt)
    if (mustBeErased && storage.has(w.key)) return `${w.key} was labeled before a deletion of its customer and survived`
    if (w.doomed && storage.has(w.key)) return `${w.key} was stored under a doomed lease and survived`
    if (w.committed && !mayBeErased && !storage.has(w.key)) return `${w.key} was erased though no deletion covered it`
    if (w.doomed && !mayBeErased) return `${w.key} was doomed though no deletion covered it`
  }
  return null
}

async function runSchedules (t: Test, makeStore: () => LabelStore, runs: number): Promise<void> {
  const base = Number(process.env.RACE_SEED ?? 1)
  let failures = 0
  for (let seed = base; seed < base + runs; seed++) {
    const problem = await schedule(seed, makeStore)
    if (problem !== null) {
      failures++
      t.fail(`seed ${seed}: ${problem} (rerun with RACE_SEED=${seed} RACE_RUNS=1)`)
      if (failures > 5) break
    }
  }
  t.equal(failures, 0, `${runs} schedules from seed ${base}`)
}

test('1,000 seeded schedules of writers and deletions keep Complete and Isolated (memory store)', async (t) => {
  await runSchedules(t, () => memoryStore(), Number(process.env.RACE_RUNS ?? 1000))
})

test('the same schedules on the SQLite store', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fcd-race-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  let n = 0
  await runSchedules(t, () => sqliteStore({ path: join(dir, `${n++}.db`), synchronous: 'NORMAL' }), Number(process.env.RACE_RUNS ?? 300))
})
