import { test } from 'tap'
import pg from 'pg'
import { setTimeout as sleep } from 'node:timers/promises'
import { runLabelStoreContract, postgresStore, errors, CustomerDataEngine } from '../index.js'
import { PG_URL, dropConnections, dropSchemas, pgSkipReason, uniqueSchema } from './helpers/pg.js'
import { POSTGRES_SCHEMA_VERSION, POSTGRES_SESSION_OPTIONS, postgresStatements } from '../lib/stores/postgres.js'

const skip = await pgSkipReason()
const schemas: string[] = []
function schema (): string {
  const s = uniqueSchema()
  schemas.push(s)
  return s
}

/** An open store on a schema of its own, both gone when the test ends. */
async function openStore (t: { teardown: (fn: () => unknown) => void }): Promise<{ s: string, store: ReturnType<typeof postgresStore> }> {
  const s = schema()
  t.teardown(() => dropSchemas([s]))
  const store = postgresStore({ connectionString: PG_URL, schema: s })
  await store.open()
  t.teardown(() => store.close())
  return { s, store }
}

test('PostgreSQL store passes the label store contract', { skip }, async (t) => {
  t.teardown(() => dropSchemas(schemas))
  runLabelStoreContract(t, async () => postgresStore({ connectionString: PG_URL, schema: schema() }))
})

test('schema migrations are versioned and run once across replicas', { skip }, async (t) => {
  const s = schema()
  t.teardown(() => dropSchemas([s]))
  const stores = Array.from({ length: 4 }, () => postgresStore({ connectionString: PG_URL, schema: s }))
  await Promise.all(stores.map((x) => x.open()))
  const secrets = await Promise.all(stores.map((x) => x.secret()))
  t.ok(secrets.every((x) => x.equals(secrets[0])), 'replicas share one installation secret')
  await Promise.all(stores.map((x) => x.close()))
  const client = new pg.Client({ connectionString: PG_URL })
  await client.connect()
  t.same((await client.query(`SELECT version FROM ${s}.schema_version`)).rows, [{ version: POSTGRES_SCHEMA_VERSION }])
  await client.query(`UPDATE ${s}.schema_version SET version = 42`)
  await client.end()
  await t.rejects(postgresStore({ connectionString: PG_URL, schema: s }).open(), /version 42, newer than/)
  t.throws(() => postgresStore({} as never), errors.FST_CUSTOMER_DATA_INVALID_OPTION)
  t.throws(() => postgresStore({ connectionString: PG_URL, schema: 'Bad-Name' }), errors.FST_CUSTOMER_DATA_INVALID_OPTION)
})

test('a label takes its customer\'s lock before it takes a seq: a deletion holding the lock sees every smaller seq', { skip }, async (t) => {
  const { s, store } = await openStore(t)
  const now = Date.now()
  const label = (customer: string, id: string) => store.label([{ leaseId: `lease-${id}`, instance: 'i', customers: [customer], kind: 'audio', id, now, expiresAt: now + 60_000 }])
  await label('c', 'first')
  const deletion = new pg.Client({ connectionString: PG_URL })
  await deletion.connect()
  t.teardown(() => deletion.end())
  const lastSeq = async (): Promise<string> => (await deletion.query(`SELECT last_value FROM ${s}.labels_seq_seq`)).rows[0].last_value
  const before = await lastSeq()
  await deletion.query('BEGIN')
  await deletion.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', ['i\u0001c'])
  let acknowledged = false
  const blocked = label('c', 'second').then(() => { acknowledged = true })
  await label('other', 'unrelated') // another customer is not held up
  const afterOther = await lastSeq()
  await sleep(200)
  t.equal(acknowledged, false, 'the label waits for the deletion\'s lock')
  t.equal(await lastSeq(), afterOther, 'and has not taken a seq while it waits')
  await deletion.query('COMMIT')
  await blocked
  t.ok(BigInt(await lastSeq()) > BigInt(afterOther), 'it takes one once the lock is free')
  t.ok(BigInt(afterOther) > BigInt(before))
})

// A doomed lease being dropped holds its pending rows, then adds its erased counts to the deletion's
// row; a second request for the same customer meanwhile must not hold that row while it waits for
// those pending rows (the two would wait on each other until PostgreSQL aborts one).
test('recording a deletion locks pending rows before the deletion\'s row, as a dropped lease does', { skip }, async (t) => {
  const { s, store } = await openStore(t)
  const now = Date.now()
  await store.label([{ leaseId: 'lease-1', instance: 'i', customers: ['c'], kind: 'audio', id: 'a1', now, expiresAt: now + 60_000 }])
  const { deletion } = await store.requestDeletion({ id: 'd-first', instance: 'i', customer: 'c', now })
  // The lease labels once more after the deletion: that row is pending, not doomed, not covered.
  await store.label([{ leaseId: 'lease-1', instance: 'i', customers: ['c'], kind: 'audio', id: 'a2', now, expiresAt: now + 60_000 }])
  const lease = new pg.Client({ connectionString: PG_URL })
  await lease.connect()
  t.teardown(() => lease.end())
  // The dropped lease's transaction, as dropLease runs it: its pending rows first…
  await lease.query('BEGIN')
  await lease.query('SET LOCAL deadlock_timeout = 100')
  await lease.query(`SELECT seq FROM ${s}.pending WHERE lease_id = 'lease-1' FOR UPDATE`)
  // …while a second request for the customer records (it waits for those rows)…
  const joined = store.requestDeletion({ id: 'd-second', instance: 'i', customer: 'c', now })
  await sleep(200)
  // …then the deletion's row, for the lease's erased counts.
  await t.resolves(lease.query(`UPDATE ${s}.deletions SET erased = '{"audio": 1}' WHERE id = $1`, [deletion.id]), 'the lease adds its counts without a deadlock')
  await lease.query('COMMIT')
  const second = await joined
  t.equal(second.created, false, 'the second request joins the running deletion')
  t.same(second.deletion.erased, { audio: 1 }, 'and sees the counts the lease added')
  t.same((await lease.query(`SELECT rid, doomed FROM ${s}.pending ORDER BY rid`)).rows, [{ rid: 'a1', doomed: true }, { rid: 'a2', doomed: true }], 'both of the lease\'s labels are doomed')
})

test('a host-owned pool is used and left open', { skip }, async (t) => {
  const s = schema()
  t.teardown(() => dropSchemas([s]))
  const pool = new pg.Pool({ connectionString: PG_URL, max: 3 })
  const store = postgresStore({ pool, schema: s })
  await store.open()
  await store.close()
  t.same((await pool.query('SELECT 1 AS one')).rows, [{ one: 1 }])
  await pool.end()
  await t.rejects(store.exportLabels('i', 'c', 1, null), errors.FST_CUSTOMER_DATA_CLOSED)
})

test('dropped connections during a deletion: it resumes and completes', { skip }, async (t) => {
  const s = schema()
  t.teardown(() => dropSchemas([s]))
  const app = `fcd-drop-${s}`
  const erased = new Set<string>()
  let calls = 0
  let terminated = 0
  const engine = new CustomerDataEngine({
    store: postgresStore({ connectionString: `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}application_name=${app}`, schema: s }),
    batchSize: 10,
    retryMinMs: 20,
    retryMaxMs: 200,
    reaperMs: 100,
    erasers: {
      audio: async (ids) => {
        calls++
        if (calls === 3) terminated = await dropConnections(app) // the database connections go away mid-deletion
        await sleep(5)
        for (const id of ids) erased.add(id)
      }
    }
  })
  await engine.start()
  const leases = await Promise.all(Array.from({ length: 100 }, (_, i) => engine.label('i', ['c'], 'audio', `a${i}`)))
  await Promise.all(leases.map((l) => l.commit()))
  const rec = await engine.requestDeletion('i', 'c', 20_000)
  t.equal(rec.status, 'completed')
  t.same(rec.erased, { audio: 100 })
  t.equal(erased.size, 100)
  t.ok(terminated >= 2, `the store's connections were terminated (${terminated}), LISTEN included`)
  t.ok(calls >= 10, 'the deletion went on after the connections were dropped')
  // The LISTEN connection comes back: a doom notice from another replica still arrives.
  await sleep(800)
  const lease = await engine.label('i', ['d'], 'audio', 'live')
  const other = new CustomerDataEngine({ store: postgresStore({ connectionString: PG_URL, schema: s }), erasers: { audio: async () => {} }, reaperMs: 1e6 })
  await other.start()
  await other.requestDeletion('i', 'd', 0)
  const aborted = lease.signal.aborted || await Promise.race([
    new Promise((resolve) => lease.signal.addEventListener('abort', () => resolve(true))),
    sleep(3000).then(() => false)
  ])
  t.ok(aborted, 'a lease on this replica aborts after the reconnect')
  await t.rejects(lease.commit(), errors.FST_CUSTOMER_DATA_LEASE_DOOMED)
  await other.close()
  await engine.close()
})

/** The layout of version 2 (the last before labels were written once), as it created its tables. */
const V2_LAYOUT = (s: string): string => `
  CREATE SCHEMA ${s};
  CREATE TABLE ${s}.schema_version (version integer NOT NULL);
  INSERT INTO ${s}.schema_version VALUES (2);
  CREATE TABLE ${s}.meta (key text PRIMARY KEY, value bytea NOT NULL);
  CREATE TABLE ${s}.labels (seq bigserial PRIMARY KEY, instance text NOT NULL, customer text NOT NULL, kind text NOT NULL,
    rid text NOT NULL, state smallint NOT NULL, lease_id text, lease_expires bigint NOT NULL DEFAULT 0, labeled_at bigint NOT NULL,
    claim_owner text, claim_until bigint NOT NULL DEFAULT 0);
  CREATE INDEX labels_by_customer ON ${s}.labels (instance, customer, seq);
  CREATE INDEX labels_by_lease ON ${s}.labels (lease_id) WHERE lease_id IS NOT NULL;
  CREATE INDEX labels_pending ON ${s}.labels (instance, customer) WHERE state = 0;
  CREATE TABLE ${s}.deletions (id text PRIMARY KEY, instance text NOT NULL, customer text NOT NULL, cover_seq bigint NOT NULL,
    status text NOT NULL, erased jsonb NOT NULL DEFAULT '{}', created_at bigint NOT NULL, completed_at bigint);
  CREATE UNIQUE INDEX deletions_running ON ${s}.deletions (instance, customer) WHERE status = 'running';
  CREATE INDEX deletions_running_age ON ${s}.deletions (created_at) WHERE status = 'running';`

test('a store written by the version 2 layout migrates in place: its running deletion completes, its pending lease commits', { skip }, async (t) => {
  const s = schema()
  t.teardown(() => dropSchemas([s]))
  const c = new pg.Client({ connectionString: PG_URL })
  await c.connect()
  await c.query(V2_LAYOUT(s))
  const now = Date.now()
  // c: a committed label and a doomed one whose writer died, both covered by a running deletion;
  // then a pending label written after the deletion. o: another customer's committed label.
  await c.query(`INSERT INTO ${s}.labels (instance, customer, kind, rid, state, lease_id, lease_expires, labeled_at) VALUES
    ('i', 'c', 'audio', 'a1', 1, NULL, 0, $1), ('i', 'c', 'audio', 'dead', 2, 'L-dead', $2, $1),
    ('i', 'o', 'audio', 'o1', 1, NULL, 0, $1)`, [now - 5000, now - 1000])
  await c.query(`INSERT INTO ${s}.deletions (id, instance, customer, cover_seq, status, erased, created_at) VALUES ('D', 'i', 'c', 2, 'running', '{}', $1)`, [now - 2000])
  await c.query(`INSERT INTO ${s}.labels (instance, customer, kind, rid, state, lease_id, lease_expires, labeled_at) VALUES ('i', 'c', 'audio', 'p1', 0, 'L-live', $1, $2)`, [now + 60_000, now])
  await c.end()

  const erased: string[] = []
  const store = postgresStore({ connectionString: PG_URL, schema: s })
  const engine = new CustomerDataEngine({ store, reaperMs: 1e6, erasers: { audio: async (ids) => { erased.push(...ids) } } })
  await engine.start()
  t.teardown(() => engine.close())
  let rec = await store.getDeletion('i', 'D')
  for (let i = 0; i < 100 && rec?.status !== 'completed'; i++) {
    await sleep(50)
    rec = await store.getDeletion('i', 'D')
  }
  t.equal(rec?.status, 'completed', 'the deletion recorded by the old layout completes')
  t.same(rec?.erased, { audio: 2 })
  t.same(erased.sort(), ['a1', 'dead'], 'its committed and its expired doomed label were erased')
  const page = await store.exportLabels('i', 'c', 10, null)
  t.same(page.items.map((i) => `${i.id}/${i.state}`), ['p1/pending'], 'the pending label moved over with its lease')
  t.same(await store.commit('L-live', Date.now()), { status: 'committed' })
  t.same((await store.exportLabels('i', 'c', 10, null)).items.map((i) => `${i.id}/${i.state}`), ['p1/committed'])
  t.same((await store.exportLabels('i', 'o', 10, null)).items.map((i) => i.id), ['o1'], 'other customers keep their labels')
  const check = new pg.Client({ connectionString: PG_URL })
  await check.connect()
  t.same((await check.query(`SELECT version FROM ${s}.schema_version`)).rows, [{ version: POSTGRES_SCHEMA_VERSION }])
  await check.end()
})

// Values for each prepared statement's parameters; a statement added without values here fails the
// test, so every statement's plan is checked.
const PLAN_PARAMS: Record<keyof ReturnType<typeof postgresStatements>, unknown[]> = {
  group: [['i\u0001c7'], ['i'], ['c7'], ['k'], ['r7'], ['lease-new'], [0], [0], ['lease-20']],
  groupWait: [['i\u0001c7'], ['i'], ['c7'], ['k'], ['r7'], ['lease-new'], [0], [0]],
  renew: [['lease-20'], 0],
  leaseRows: ['lease-20'],
  withdraw: ['i', 'k', ['r7']],
  commitLease: ['lease-20'],
  dropLabels: ['i', 'c7', [7]],
  dropPending: ['lease-20'],
  coveringDeletion: ['i', 'c7', 7],
  addErased: ['d7', '{"k": 1}'],
  customerLock: ['i\u0001c7'],
  record: ['i', 'c7', 'dnew', 0],
  notify: ['x', 'y'],
  scope: ['d7'],
  claim: ['i', 'c7', '1000', '0', 0, 500],
  finish: ['d7', 0],
  byId: ['d7'],
  byIdIn: ['d7', 'i'],
  running: [10],
  exportPage: ['i', 'c7', '0', 101]
}

interface PlanNode { 'Node Type': string, 'Relation Name'?: string, 'Index Name'?: string, 'Index Cond'?: string, Plans?: PlanNode[] }

/** Each statement's generic plan, as a connection of the store's pool would make it now: the text, and its nodes. */
async function genericPlans (c: pg.Client, s: string): Promise<Map<string, { text: string, nodes: PlanNode[] }>> {
  const sql = postgresStatements(s)
  const plans = new Map<string, { text: string, nodes: PlanNode[] }>()
  const literal = (v: unknown): string => Array.isArray(v) ? `ARRAY[${v.map(literal).join(', ')}]` : typeof v === 'number' ? String(v) : c.escapeLiteral(String(v))
  const flatten = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(flatten)]
  for (const name of Object.keys(sql) as Array<keyof typeof sql>) {
    await c.query(`PREPARE probe AS ${sql[name]}`)
    const args = (PLAN_PARAMS[name] ?? []).map(literal).join(', ')
    // EXPLAIN without ANALYZE runs nothing
    const text = (await c.query(`EXPLAIN EXECUTE probe (${args})`)).rows.map((r) => r['QUERY PLAN']).join('\n')
    const json = (await c.query(`EXPLAIN (FORMAT JSON) EXECUTE probe (${args})`)).rows[0]['QUERY PLAN'] as Array<{ Plan: PlanNode }>
    plans.set(name, { text, nodes: flatten(json[0].Plan) })
    await c.query('DEALLOCATE probe')
  }
  return plans
}

// A pool prepares each statement on a connection's first use and keeps the generic plan as long as
// the connection lives, so the plan a new, empty schema gets must hold on a table of millions.
test('every prepared statement keeps index scans under a generic plan, on a new empty schema and on a table of many customers', { skip }, async (t) => {
  const s = schema()
  t.teardown(() => dropSchemas([s]))
  const store = postgresStore({ connectionString: PG_URL, schema: s })
  await store.open()
  await store.close()
  const c = new pg.Client({ connectionString: PG_URL, options: POSTGRES_SESSION_OPTIONS })
  await c.connect()
  t.teardown(() => c.end())
  t.same(Object.keys(postgresStatements(s)).filter((name) => !(name in PLAN_PARAMS)), [], 'every statement has probe values')
  // Where a statement reads a customer's or a lease's rows, the index that finds them by all the
  // columns it is given (an index matched on the instance alone would read the whole instance).
  const indexes: Partial<Record<keyof typeof PLAN_PARAMS, RegExp[]>> = {
    group: [/pending_by_lease/, /pending_pkey/],
    dropLabels: [/labels_by_customer/],
    claim: [/labels_by_customer/, /pending_pkey/],
    exportPage: [/labels_by_customer/, /pending_pkey/],
    finish: [/labels_by_customer/],
    addErased: [/deletions_pkey/],
    record: [/labels_by_customer/, /deletions_running/, /pending_by_customer/],
    withdraw: [/labels_by_resource/, /pending_pkey/],
    leaseRows: [/pending_by_lease/]
  }
  // Indexes a statement must not read by: the claim looks each label's pending row up by primary
  // key, because the customer index holds a dead entry per committed label until the next vacuum.
  const avoid: Partial<Record<keyof typeof PLAN_PARAMS, RegExp[]>> = {
    claim: [/pending_by_customer/]
  }
  // No scan of a store table reads it whole: no sequential scan, and every index scan has an index
  // condition (with seq scans off, a walk of a whole index is the planner's other way to read all).
  const check = (when: string, plans: Map<string, { text: string, nodes: PlanNode[] }>): void => {
    for (const [name, { text, nodes }] of plans) {
      // deletions_running_age holds running deletions only: walking it is what `running` means to do.
      const whole = nodes.filter((n) => ['labels', 'pending', 'deletions'].includes(n['Relation Name'] ?? '') &&
        (n['Node Type'] === 'Seq Scan' || (/Index/.test(n['Node Type']) && n['Index Cond'] === undefined && n['Index Name'] !== 'deletions_running_age')))
      t.same(whole.map((n) => `${n['Node Type']} ${n['Index Name'] ?? ''} on ${n['Relation Name'] ?? ''}`), [], `${when}: ${name} reads no table whole\n${text}`)
      for (const index of indexes[name as keyof typeof PLAN_PARAMS] ?? []) t.match(text, index, `${when}: ${name} uses ${index.source}\n${text}`)
      for (const index of avoid[name as keyof typeof PLAN_PARAMS] ?? []) t.notMatch(text, index, `${when}: ${name} does not use ${index.source}\n${text}`)
    }
  }
  check('empty schema', await genericPlans(c, s))
  await c.query(`INSERT INTO ${s}.labels (instance, customer, kind, rid, labeled_at)
    SELECT 'i', 'c' || (g % 2000), 'k', 'r' || g, 0 FROM generate_series(1, 60000) AS g`)
  await c.query(`INSERT INTO ${s}.pending (seq, instance, customer, kind, rid, lease_id, lease_expires)
    SELECT seq, instance, customer, kind, rid, 'lease-' || seq, 0 FROM ${s}.labels WHERE seq % 20 = 0`)
  await c.query(`INSERT INTO ${s}.deletions (id, instance, customer, cover_seq, status, created_at)
    SELECT 'd' || g, 'i', 'c' || g, 100, CASE WHEN g % 10 = 0 THEN 'running' ELSE 'completed' END, 0 FROM generate_series(1, 2000) AS g`)
  await c.query(`ANALYZE ${s}.labels; ANALYZE ${s}.pending; ANALYZE ${s}.deletions`)
  check('60,000 labels', await genericPlans(c, s))
  // Every pending row committed and vacuumed away: the table is known to be empty, and a plan made
  // now lives on while the table fills again.
  await c.query(`DELETE FROM ${s}.pending`)
  await c.query(`VACUUM ANALYZE ${s}.pending`)
  check('an emptied, vacuumed pending table', await genericPlans(c, s))
})
