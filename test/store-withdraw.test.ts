// The isolation story of withdrawing labels, through the engine on every store: a host deletes or
// replaces a resource itself, another customer reuses its name, and the first customer's deletion
// must leave the second customer's data alone.
import { test, type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CustomerDataEngine, memoryStore, sqliteStore, postgresStore, errors, type LabelStore } from '../index.js'
import { PG_URL, dropSchemas, pgSkipReason, uniqueSchema } from './helpers/pg.js'

const pgSkip = await pgSkipReason()

const stores: Array<{ name: string, skip: string | false, make: (t: Test) => LabelStore }> = [
  { name: 'memory', skip: false, make: () => memoryStore() },
  {
    name: 'sqlite',
    skip: false,
    make: (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'fcd-withdraw-'))
      t.teardown(() => rmSync(dir, { recursive: true, force: true }))
      return sqliteStore({ path: join(dir, 'labels.db') })
    }
  },
  {
    name: 'postgres',
    skip: pgSkip,
    make: (t) => {
      const schema = uniqueSchema()
      t.teardown(() => dropSchemas([schema]))
      return postgresStore({ connectionString: PG_URL, schema })
    }
  }
]

/** A host's own data: words by name, as a speech service keeps custom words. */
async function host (t: Test, store: LabelStore): Promise<{ engine: CustomerDataEngine, words: Map<string, string> }> {
  const words = new Map<string, string>()
  const engine = new CustomerDataEngine({
    store,
    reaperMs: 1e6,
    erasers: { word: async (ids) => { for (const id of ids) words.delete(id) } }
  })
  await engine.start()
  t.teardown(() => engine.close())
  return { engine, words }
}

async function store (engine: CustomerDataEngine, words: Map<string, string>, customers: string[], name: string, owner: string, replace?: boolean): Promise<void> {
  const lease = await engine.label('inst', customers, 'word', name, replace === undefined ? undefined : { replace })
  words.set(name, owner)
  await lease.commit()
}

for (const s of stores) {
  test(`${s.name}: a withdrawn resource's name reused by another customer survives the first customer's deletion`, { skip: s.skip }, async (t) => {
    const { engine, words } = await host(t, s.make(t))
    await store(engine, words, ['X'], 'hello', 'X')
    await store(engine, words, ['X'], 'mine', 'X')
    words.delete('hello') // the host deletes X's word through its own API…
    t.equal(await engine.withdraw('inst', 'word', ['hello']), 1, '…and withdraws its label')
    await store(engine, words, ['Y'], 'hello', 'Y')
    const rec = await engine.requestDeletion('inst', 'X', 5000)
    t.equal(rec.status, 'completed')
    t.same(rec.erased, { word: 1 })
    t.equal(words.get('hello'), 'Y', "Y's word is still there")
    t.notOk(words.has('mine'), "X's own word is erased")
  })

  test(`${s.name}: without the withdrawal, the same story erases Y's data (what withdraw prevents)`, { skip: s.skip }, async (t) => {
    const { engine, words } = await host(t, s.make(t))
    await store(engine, words, ['X'], 'hello', 'X')
    words.delete('hello')
    await store(engine, words, ['Y'], 'hello', 'Y')
    await engine.requestDeletion('inst', 'X', 5000)
    t.notOk(words.has('hello'), "the stale label took Y's word")
  })

  test(`${s.name}: a replacing write takes the resource from its former customers, labeled or not`, { skip: s.skip }, async (t) => {
    const { engine, words } = await host(t, s.make(t))
    await store(engine, words, ['X'], 'hello', 'X')
    await store(engine, words, ['Y'], 'hello', 'Y', true)
    t.same((await engine.exportLabels('inst', 'X', 10, null)).items, [], 'X no longer owns it')
    t.equal((await engine.requestDeletion('inst', 'X', 5000)).status, 'completed')
    t.equal(words.get('hello'), 'Y', "X's deletion leaves Y's replacement")
    await store(engine, words, [], 'hello', 'nobody', true) // a write naming no customer
    t.same((await engine.exportLabels('inst', 'Y', 10, null)).items, [], 'an unlabeled replacement withdraws the old labels too')
    await engine.requestDeletion('inst', 'Y', 5000)
    t.equal(words.get('hello'), 'nobody')
  })

  test(`${s.name}: bad input through the engine is the caller's error, never a store outage`, { skip: s.skip }, async (t) => {
    const { engine } = await host(t, s.make(t))
    await t.rejects(engine.label('inst', ['X'], 'word', 'a\u0000b'), errors.FST_CUSTOMER_DATA_INVALID_RESOURCE)
    await t.rejects(engine.withdraw('inst', 'word', ['a\u0000b']), errors.FST_CUSTOMER_DATA_INVALID_RESOURCE)
    await t.rejects(engine.withdraw('inst', 'nokind', ['a']), errors.FST_CUSTOMER_DATA_NO_ERASER)
    await t.rejects(engine.exportLabels('inst', 'X', 10, '18446744073709551616'), errors.FST_CUSTOMER_DATA_BAD_REQUEST)
    t.equal(await engine.getDeletion('inst', 'x\u0000y'), null)
  })
}
