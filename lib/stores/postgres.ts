// The fleet label store on PostgreSQL (docs/ARCHITECTURE.md, "Stores"): several server replicas share one database.
// Doom notices travel by LISTEN/NOTIFY, so a lease held on another replica aborts.
//
// Layout (docs/ARCHITECTURE.md, "Store layout"): a label is written once into `labels` and never
// updated; what changes while its writer works (lease, expiry, doomed) lives in the small
// `pending` table, and a commit deletes the lease's pending rows. So a commit rewrites no entry of
// the big indexes. A deletion covers the labels of (instance, customer) at or below its cover_seq.
// Label inserts take a shared advisory lock on (instance, customer) and a deletion takes it
// exclusively, so a deletion sees every label acknowledged before it and every later label gets a
// higher seq. A deletion batch is one transaction: it deletes the labels it claims (FOR UPDATE
// SKIP LOCKED, so other replicas take other labels), the eraser runs, and the commit adds the
// counts; a crash or a failed eraser rolls it back and the labels are claimed again.
import type pg from 'pg'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { FST_CUSTOMER_DATA_CLOSED, FST_CUSTOMER_DATA_INVALID_OPTION } from '../errors.js'
import { loadDriver } from './driver.js'
import { GroupCommit } from './group-commit.js'
import { setAdd } from './multimap.js'
import { checkInteger, checkKnownKeys } from '../options.js'
import {
  checkLabel, checkStoreText, checkWithdraw, countByKind, distinctResources, isDeletionId, parseSeqCursor,
  type ClaimedLabel, type ClaimOptions, type CommitResult, type DeletionRecord, type DeletionRef,
  type ExportPage, type LabelInput, type LabelState, type LabelStore, type RequestDeletionInput, type WithdrawInput
} from '../store.js'
import {
  applyDeletionAttempt, deletionCursor, parseDeletionCursor,
  type DeletionFailureInput, type DeletionPage, type DeletionProgress, type KindFailure, type ListDeletionsOptions, type RunningSummary
} from '../store.js'

/** A query's result, as pg returns it. */
export interface PostgresQueryResult {
  rows: unknown[]
  rowCount: number | null
}

/** A connection checked out of a pool (a pg PoolClient fits). */
export interface PostgresPoolClient {
  query(text: string, values?: unknown[]): Promise<PostgresQueryResult>
  release(destroy?: boolean): void
  on(event: string, listener: (...args: any[]) => void): unknown
}

/**
 * What the store needs of a connection pool, described by shape so that hosts need no @types/pg:
 * a `pg.Pool` fits.
 */
export interface PostgresPool {
  connect(): Promise<PostgresPoolClient>
  query(text: string, values?: unknown[]): Promise<PostgresQueryResult>
  end(): Promise<void>
  on(event: 'error', listener: (err: Error) => void): unknown
}

export interface PostgresStoreOptions {
  /** A pg Pool the host owns (not ended on close). */
  pool?: PostgresPool
  /** Or a connection string; the store then owns its pool. */
  connectionString?: string
  /** Schema holding the tables. Default `customer_data`. */
  schema?: string
  /** Pool size when the store creates the pool. Default 10. */
  max?: number
}

export const POSTGRES_DEFAULTS = {
  schema: 'customer_data',
  max: 10
} as const
/**
 * The session settings the store's statements are planned under; the pool the store creates uses
 * them, and a host's own pool should too (`new pg.Pool({ …, options: POSTGRES_SESSION_OPTIONS })`).
 * Each prepared statement is planned once (a generic plan). Seq scans are ruled out wherever an
 * index can answer: the pending table is emptied by every commit and by vacuum, so a plan made
 * while it looked empty would otherwise scan it, dead rows and all, for as long as the connection
 * lives (docs/store-layout.md).
 */
export const POSTGRES_SESSION_OPTIONS = '-c plan_cache_mode=force_generic_plan -c enable_seqscan=off'
/** More connections than PostgreSQL's default max_connections (100) can ever serve. */
const MAX_POOL = 100
// At least 2: one connection stays checked out for LISTEN, and queries need another.
const POSTGRES_OPTIONS = ['pool', 'connectionString', 'schema', 'max'] as const

const IDENT = /^[a-z_][a-z0-9_]{0,62}$/
const NOTIFY_CHUNK = 150 // lease ids per NOTIFY payload (8000-byte limit)
const MAX_GROUP = 1000 // writes per group statement: bounds its arrays and its row locks
/** Groups waiting on a customer lock (a deletion in progress) before others go around them. */
const STALL_MS = 20
const MAX_FLUSHERS = 4
/** Dead pending rows (one per committed label) that start an autovacuum of the pending table. */
const PENDING_VACUUM_THRESHOLD = 5000

function migrations (s: string): string[] {
  return [
    `CREATE TABLE ${s}.meta (key text PRIMARY KEY, value bytea NOT NULL);
     CREATE TABLE ${s}.labels (
       seq bigserial PRIMARY KEY,
       instance text NOT NULL,
       customer text NOT NULL,
       kind text NOT NULL,
       rid text NOT NULL,
       state smallint NOT NULL,
       lease_id text,
       lease_expires bigint NOT NULL DEFAULT 0,
       labeled_at bigint NOT NULL,
       claim_owner text,
       claim_until bigint NOT NULL DEFAULT 0
     );
     CREATE INDEX labels_by_customer ON ${s}.labels (instance, customer, seq);
     CREATE INDEX labels_by_lease ON ${s}.labels (lease_id) WHERE lease_id IS NOT NULL;
     CREATE INDEX labels_pending ON ${s}.labels (instance, customer) WHERE state = 0;
     CREATE INDEX labels_committed ON ${s}.labels (instance, customer, kind, rid) WHERE state = 1;
     CREATE TABLE ${s}.deletions (
       id text PRIMARY KEY,
       instance text NOT NULL,
       customer text NOT NULL,
       cover_seq bigint NOT NULL,
       status text NOT NULL,
       erased jsonb NOT NULL DEFAULT '{}',
       created_at bigint NOT NULL,
       completed_at bigint
     );
     CREATE UNIQUE INDEX deletions_running ON ${s}.deletions (instance, customer) WHERE status = 'running';
     CREATE INDEX deletions_running_age ON ${s}.deletions (created_at) WHERE status = 'running';`,
    // v2: a resource labeled twice keeps both labels (see the SQLite store's v2).
    `DROP INDEX ${s}.labels_committed;`,
    // v3: labels are written once; a writer's state moves to the small pending table, so a commit
    // deletes a pending row instead of rewriting a label and its index entries. Committed labels
    // (state 1) have no pending row; pending (0) and doomed (2) ones move over with their lease.
    // Batch claims become row locks of one transaction, and withdraw finds labels by resource.
    `CREATE TABLE ${s}.pending (
       seq bigint PRIMARY KEY,
       instance text NOT NULL,
       customer text NOT NULL,
       kind text NOT NULL,
       rid text NOT NULL,
       lease_id text NOT NULL,
       lease_expires bigint NOT NULL,
       doomed boolean NOT NULL DEFAULT false
     );
     INSERT INTO ${s}.pending (seq, instance, customer, kind, rid, lease_id, lease_expires, doomed)
       SELECT seq, instance, customer, kind, rid, coalesce(lease_id, ''), lease_expires, state = 2 FROM ${s}.labels WHERE state <> 1;
     CREATE INDEX pending_by_lease ON ${s}.pending (lease_id);
     CREATE INDEX pending_by_customer ON ${s}.pending (instance, customer);
     DROP INDEX ${s}.labels_by_lease;
     DROP INDEX ${s}.labels_pending;
     ALTER TABLE ${s}.labels DROP CONSTRAINT labels_pkey,
       DROP COLUMN state, DROP COLUMN lease_id, DROP COLUMN lease_expires, DROP COLUMN claim_owner, DROP COLUMN claim_until;
     CREATE INDEX labels_by_resource ON ${s}.labels (instance, kind, rid);`,
    // v4: operators see a deletion's failed attempts and each failing kind's last error (the list
    // route, the console); the instance's deletions are listed newest first from an index.
    `ALTER TABLE ${s}.deletions ADD COLUMN attempts integer NOT NULL DEFAULT 0;
     ALTER TABLE ${s}.deletions ADD COLUMN failures jsonb NOT NULL DEFAULT '{}';
     CREATE INDEX deletions_by_instance ON ${s}.deletions (instance, created_at, id);`,
    // v5: the pending table churns (a row per label, deleted at its commit): it is vacuumed once a
    // few thousand rows have died and never truncated, so its pages are reused and its size on
    // disk tells the planner it is not empty. Storage parameters only: the lock this takes lets
    // replicas of the previous version go on writing, and their prepared statements stay valid.
    `ALTER TABLE ${s}.pending SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = ${PENDING_VACUUM_THRESHOLD}, vacuum_truncate = false);`
  ]
}
export const POSTGRES_SCHEMA_VERSION = migrations('x').length

interface DeletionRow {
  id: string
  instance: string
  customer: string
  cover_seq: string
  status: 'running' | 'completed'
  erased: Record<string, number>
  created_at: string
  completed_at: string | null
}

/** What a deletion covers: the labels of (instance, customer) up to cover_seq. */
interface DeletionScope { instance: string, customer: string, cover_seq: string }

interface PendingRow { seq: string, instance: string, customer: string, kind: string, rid: string, doomed: boolean }

/** The lock keys (sorted, so concurrent groups take them in one order) and columns of a group's labels. */
function labelColumns (labels: readonly LabelInput[]): [string[], string[], string[], string[], string[], string[], string[], string[]] {
  const cols: [string[], string[], string[], string[], string[], string[], string[]] = [[], [], [], [], [], [], []]
  for (const l of labels) {
    for (const customer of l.customers) {
      cols[0].push(l.instance); cols[1].push(customer); cols[2].push(l.kind); cols[3].push(l.id)
      cols[4].push(l.leaseId); cols[5].push(String(l.expiresAt)); cols[6].push(String(l.now))
    }
  }
  const keys = [...new Set(cols[0].map((instance, i) => instance + '\u0001' + cols[1][i]))].sort()
  return [keys, ...cols]
}

/**
 * The one order in which every statement locks pending rows, (lease_id, seq), so no two of them
 * wait on each other in a cycle. Written as expressions no index gives, so a plan finds the rows
 * by the index its WHERE names and sorts them, instead of walking a whole index for its order.
 */
function lockOrder (alias: string): string {
  return `${alias}lease_id || '', ${alias}seq + 0`
}

/**
 * Every statement the store runs, as named prepared statements: each connection parses and plans
 * a name once, and PostgreSQL keeps a generic plan for it. Every WHERE names the leading columns
 * of an index, so the generic plans are index scans (docs/ARCHITECTURE.md, "Store layout").
 */
export function postgresStatements (s: string) {
  return {
    /**
     * One group: $1 sorted "instance customer" lock keys; $2–$8 label columns; $9 lease ids to
     * commit. Each label's seq is drawn only after its customer's shared lock is held: the row
     * filter that reads the lock runs before nextval in the select list. A customer whose lock a
     * deletion holds is skipped, not waited for (its rows come back with their ordinal in
     * `skipped`, and groupWait inserts them), so other customers' writes are not held up behind
     * it. A lease with a doomed label is not committed; the caller learns it from the rows.
     * Commits are as durable as labels: a commit lost in a crash would leave a label pending with
     * no writer, which withdrawing (it leaves pending labels alone) could never remove.
     * The pending rows go by primary key (`seq = ANY(ARRAY(…))`), never by a join that a generic
     * plan made on a small table could turn into a scan of every dead row.
     */
    group: `WITH locks AS MATERIALIZED (
        SELECT k FROM unnest($1::text[]) AS k WHERE pg_try_advisory_xact_lock_shared(hashtextextended(k, 0))
      ), input AS MATERIALIZED (
        SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[]) WITH ORDINALITY AS t(i, c, k, r, l, e, n, o)
      ), src AS MATERIALIZED (
        SELECT nextval('${s}.labels_seq_seq') AS seq, i, c, k, r, l, e, n FROM input WHERE i || chr(1) || c IN (SELECT k FROM locks)
      ), inserted AS (
        INSERT INTO ${s}.labels (seq, instance, customer, kind, rid, labeled_at) SELECT seq, i, c, k, r, n FROM src
      ), pending AS (
        INSERT INTO ${s}.pending (seq, instance, customer, kind, rid, lease_id, lease_expires) SELECT seq, i, c, k, r, l, e FROM src
      ), target AS (
        SELECT seq, lease_id, kind, rid, doomed FROM ${s}.pending WHERE lease_id = ANY($9::text[]) ORDER BY ${lockOrder('')} FOR UPDATE
      ), committed AS (
        DELETE FROM ${s}.pending WHERE seq = ANY(ARRAY(
          SELECT t.seq FROM target AS t WHERE NOT EXISTS (SELECT 1 FROM target AS d WHERE d.lease_id = t.lease_id AND d.doomed)))
      )
      SELECT lease_id, kind, rid, doomed, NULL::bigint AS skipped FROM target
      UNION ALL
      SELECT NULL, NULL, NULL, NULL, o FROM input WHERE i || chr(1) || c NOT IN (SELECT k FROM locks)`,
    /** The labels a group skipped: waits for their customers' locks (the InitPlan runs first). */
    groupWait: `WITH locks AS (
        SELECT count(*) AS n FROM (SELECT pg_advisory_xact_lock_shared(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k) AS held
      ), src AS MATERIALIZED (
        SELECT nextval('${s}.labels_seq_seq') AS seq, i, c, k, r, l, e, n
        FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[]) AS t(i, c, k, r, l, e, n)
        WHERE (SELECT n FROM locks) >= 0
      ), inserted AS (
        INSERT INTO ${s}.labels (seq, instance, customer, kind, rid, labeled_at) SELECT seq, i, c, k, r, n FROM src
      )
      INSERT INTO ${s}.pending (seq, instance, customer, kind, rid, lease_id, lease_expires) SELECT seq, i, c, k, r, l, e FROM src`,
    /** Locks the leases' rows in the pending lock order (lockOrder), then renews them. */
    renew: `WITH renewed AS (
        UPDATE ${s}.pending SET lease_expires = $2 WHERE seq = ANY(ARRAY(
          SELECT seq FROM ${s}.pending WHERE lease_id = ANY($1::text[]) ORDER BY ${lockOrder('')} FOR UPDATE))
        RETURNING lease_id, doomed
      ) SELECT lease_id, bool_or(doomed) AS doomed FROM renewed GROUP BY lease_id`,
    /** One lease's rows, locked in the pending lock order (lockOrder). */
    leaseRows: `SELECT seq, instance, customer, kind, rid, doomed FROM ${s}.pending WHERE lease_id = $1 ORDER BY ${lockOrder('')} FOR UPDATE`,
    /**
     * Committed labels (no pending row) of the resources. A label a running batch holds is being
     * erased already, so it is skipped, not waited for. Committed labels carry no lease here, so
     * an excepted lease's labels, pending until it commits, are never among them.
     */
    withdraw: `DELETE FROM ${s}.labels WHERE ctid IN (
        SELECT l.ctid FROM ${s}.labels AS l
        WHERE l.instance = $1 AND l.kind = $2 AND l.rid = ANY($3::text[])
          AND (SELECT true FROM ${s}.pending AS p WHERE p.seq = l.seq) IS NULL
        FOR UPDATE SKIP LOCKED)`,
    commitLease: `DELETE FROM ${s}.pending WHERE lease_id = $1`,
    /**
     * The lease's labels of one customer, by the customer index (pending rows name their
     * customer). Every column is an equality or a list on that index, so even the plan a new,
     * empty table gets uses it.
     */
    dropLabels: `DELETE FROM ${s}.labels WHERE instance = $1 AND customer = $2 AND seq = ANY($3::bigint[]) RETURNING seq`,
    dropPending: `DELETE FROM ${s}.pending WHERE lease_id = $1`,
    coveringDeletion: `SELECT id, instance FROM ${s}.deletions WHERE instance = $1 AND customer = $2 AND status = 'running' AND cover_seq >= $3`,
    /** Adds counts per kind ($2, a JSON object) to a deletion's, in one statement (the row lock serializes replicas). */
    addErased: `UPDATE ${s}.deletions SET erased = erased || coalesce((
        SELECT jsonb_object_agg(a.key, coalesce((erased ->> a.key)::bigint, 0) + a.value::bigint) FROM jsonb_each_text($2::jsonb) AS a), '{}'::jsonb)
      WHERE id = $1`,
    customerLock: 'SELECT pg_advisory_xact_lock(hashtextextended($1, 0))',
    /**
     * Records a deletion (or extends the running one's cover) and dooms the customer's pending
     * labels, in one statement, run once the customer's lock is held: every label written before
     * is in its snapshot, and no later one can be (writers wait for the lock). The cover is the
     * customer's highest seq; the pending rows are locked in the pending lock order (lockOrder).
     * Pending rows are locked before the deletion's row, as a batch and a dropped lease lock them
     * (PostgreSQL leaves the order of data-modifying CTEs open, so `extended` waits on `doomed`
     * explicitly): the other order could deadlock with a doomed lease adding its erased counts.
     * Returns the deletion's row, whether it was created, and the leases it doomed.
     */
    record: `WITH cover AS MATERIALIZED (
        SELECT coalesce(max(seq), 0) AS seq FROM ${s}.labels WHERE instance = $1 AND customer = $2
      ), doomed AS (
        UPDATE ${s}.pending SET doomed = true WHERE seq = ANY(ARRAY(
          SELECT seq FROM ${s}.pending WHERE instance = $1 AND customer = $2 AND NOT doomed ORDER BY ${lockOrder('')} FOR UPDATE))
        RETURNING lease_id
      ), extended AS (
        UPDATE ${s}.deletions SET cover_seq = greatest(cover_seq, (SELECT seq FROM cover))
        WHERE instance = $1 AND customer = $2 AND status = 'running' AND (SELECT count(*) FROM doomed) >= 0 RETURNING *
      ), created AS (
        INSERT INTO ${s}.deletions (id, instance, customer, cover_seq, status, created_at)
        SELECT $3::text, $1, $2, (SELECT seq FROM cover), 'running', $4::bigint WHERE NOT EXISTS (SELECT 1 FROM extended) RETURNING *
      )
      SELECT d.*, ARRAY(SELECT DISTINCT lease_id FROM doomed) AS doomed_leases
      FROM (SELECT *, true AS created FROM created UNION ALL SELECT *, false FROM extended) AS d`,
    notify: 'SELECT pg_notify($1, $2)',
    scope: `SELECT instance, customer, cover_seq FROM ${s}.deletions WHERE id = $1 AND status = 'running'`,
    /**
     * One batch: deletes up to $6 covered labels ready to erase (committed, or doomed with an
     * expired lease) that no other transaction holds, with their pending rows. Runs inside the
     * batch's transaction, which commits once the eraser succeeded. Each label's pending row is
     * looked up by primary key: through the customer index instead, every look-up would step over
     * the dead entries of all the customer's committed labels until the next vacuum (a
     * 20,000-label customer deleted right after it was labeled took 11–12 s instead of 0.3 s).
     * The locked rows are deleted by their ctids in one Tid Scan: joining the locking sub-query
     * instead cost a 500-label batch about 0.6 ms more.
     */
    claim: `WITH gone AS (
        DELETE FROM ${s}.labels WHERE ctid = ANY(ARRAY(
          SELECT l.ctid FROM ${s}.labels AS l
          WHERE l.instance = $1 AND l.customer = $2 AND l.seq <= $3::bigint AND l.seq > $4::bigint
            AND coalesce((SELECT p.lease_expires FROM ${s}.pending AS p WHERE p.seq = l.seq), 0) <= $5
          ORDER BY l.seq LIMIT $6
          FOR UPDATE OF l SKIP LOCKED))
        RETURNING seq, kind, rid
      ), expired AS (
        DELETE FROM ${s}.pending WHERE seq = ANY(ARRAY(
          SELECT p.seq FROM ${s}.pending AS p WHERE p.seq = ANY(ARRAY(SELECT seq FROM gone)) ORDER BY ${lockOrder('p.')} FOR UPDATE))
      )
      SELECT seq, kind, rid FROM gone ORDER BY seq`,
    finish: `UPDATE ${s}.deletions AS d SET status = 'completed', completed_at = $2
      WHERE d.id = $1 AND d.status = 'running'
        AND NOT EXISTS (SELECT 1 FROM ${s}.labels AS l WHERE l.instance = d.instance AND l.customer = d.customer AND l.seq <= d.cover_seq)
      RETURNING *`,
    byId: `SELECT * FROM ${s}.deletions WHERE id = $1`,
    byIdIn: `SELECT * FROM ${s}.deletions WHERE id = $1 AND instance = $2`,
    running: `SELECT id, instance FROM ${s}.deletions WHERE status = 'running' ORDER BY created_at LIMIT $1`,
    exportPage: `SELECT l.seq, l.kind, l.rid, l.labeled_at, (SELECT p.doomed FROM ${s}.pending AS p WHERE p.seq = l.seq) AS doomed
      FROM ${s}.labels AS l
      WHERE l.instance = $1 AND l.customer = $2
        AND l.seq > greatest($3::bigint, coalesce((SELECT cover_seq FROM ${s}.deletions WHERE instance = $1 AND customer = $2 AND status = 'running'), 0))
      ORDER BY l.seq LIMIT $4`
  }
}
type Statement = keyof ReturnType<typeof postgresStatements>

/** A row of a lease the group committed (or found doomed), or the ordinal of a label it skipped. */
interface GroupRow { lease_id: string, kind: string, rid: string, doomed: boolean, skipped: string | null }

/** One label row per customer, with the write it belongs to. */
function labelRows (group: readonly QueuedWrite[]): Array<{ write: QueuedWrite, label: LabelInput }> {
  const rows: Array<{ write: QueuedWrite, label: LabelInput }> = []
  for (const write of group) {
    for (const l of write.labels ?? []) {
      for (const customer of l.customers) rows.push({ write, label: l.customers.length === 1 ? l : { ...l, customers: [customer] } })
    }
  }
  return rows
}

/** Each lease's outcome from the rows it had when the group ran. */
function commitResults (leaseIds: readonly string[], rows: readonly GroupRow[]): Map<string, CommitResult> {
  const byLease = new Map<string, GroupRow[]>()
  for (const r of rows) {
    let mine = byLease.get(r.lease_id)
    if (mine === undefined) byLease.set(r.lease_id, mine = [])
    mine.push(r)
  }
  const results = new Map<string, CommitResult>()
  for (const id of leaseIds) {
    const mine = byLease.get(id)
    if (mine === undefined) results.set(id, { status: 'gone' })
    else if (mine.some((r) => r.doomed)) results.set(id, { status: 'doomed', resources: distinctResources(mine.map((r) => ({ kind: r.kind, id: r.rid }))) })
    else results.set(id, { status: 'committed' })
  }
  return results
}

/** A write waiting for the next group statement: labels to insert, or a lease to commit. */
interface QueuedWrite {
  labels?: readonly LabelInput[]
  leaseId?: string
  resolve: (result?: CommitResult) => void
  reject: (err: Error) => void
}

/** A batch's open transaction: its labels are deleted but not committed until the eraser succeeds. */
interface OpenBatch {
  deletionId: string
  owner: string
  client: pg.PoolClient
  /** The client's 'error' listener while the batch holds it. */
  ignore: () => void
  keys: Set<string>
  until: number
}

function toRecord (r: DeletionRow): DeletionRecord {
  return {
    id: r.id,
    instance: r.instance,
    customer: r.customer,
    status: r.status,
    erased: { ...r.erased },
    createdAt: Number(r.created_at),
    completedAt: r.completed_at === null ? null : Number(r.completed_at)
  }
}

type Queryable = pg.Pool | pg.PoolClient

export class PostgresStore implements LabelStore {
  readonly schema: string
  readonly #sql: ReturnType<typeof postgresStatements>
  readonly #options: PostgresStoreOptions
  readonly #max: number
  #pool: pg.Pool | null = null
  #ownsPool: boolean
  #listener: pg.PoolClient | null = null
  #listenRetry: NodeJS.Timeout | null = null
  #events = new EventEmitter()
  readonly #group: GroupCommit<QueuedWrite>
  /** Each running deletion's scope, as this process's last claim read it (see claimBatch). */
  readonly #scopes = new Map<string, DeletionScope>()
  /** Open batch transactions of this process, by deletion id and owner. */
  readonly #batches = new Map<string, OpenBatch>()
  #closed = false
  readonly #channel: string
  readonly #names: Record<Statement, string>

  constructor (options: PostgresStoreOptions) {
    checkKnownKeys('postgresStore', options, POSTGRES_OPTIONS)
    if (options.pool === undefined && typeof options.connectionString !== 'string') {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION('postgresStore needs { pool } or { connectionString: "postgres://…" }')
    }
    if (options.pool !== undefined && (options.pool === null || typeof options.pool.connect !== 'function' || typeof options.pool.query !== 'function')) {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION('postgresStore pool must be a pg Pool (new pg.Pool(…))')
    }
    if (options.pool !== undefined && options.max !== undefined) {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION('postgresStore max sizes the pool the store creates; with { pool }, size your own pool')
    }
    this.#max = checkInteger('postgresStore max', options.max, { min: 2, max: MAX_POOL }, POSTGRES_DEFAULTS.max)
    const schema = options.schema ?? POSTGRES_DEFAULTS.schema
    if (!IDENT.test(schema)) throw new FST_CUSTOMER_DATA_INVALID_OPTION('postgresStore schema must be a lower-case SQL identifier')
    this.schema = schema
    this.#sql = postgresStatements(schema)
    // Statement names carry the schema: two stores on one host pool never share a name.
    this.#names = Object.fromEntries(Object.keys(this.#sql).map((k) => [k, `fcd_${schema}_${k}`])) as Record<Statement, string>
    this.#group = new GroupCommit((group) => this.#runGroup(group), { maxGroup: MAX_GROUP, maxFlushers: MAX_FLUSHERS, stallMs: STALL_MS })
    this.#channel = `${schema}_doom`
    this.#options = options
    this.#ownsPool = options.pool === undefined
    this.#events.setMaxListeners(0)
  }

  get #db (): pg.Pool {
    if (this.#pool === null || this.#closed) throw new FST_CUSTOMER_DATA_CLOSED()
    return this.#pool
  }

  async open (): Promise<void> {
    if (this.#pool !== null) return
    this.#closed = false
    const pool = (this.#options.pool as pg.Pool | undefined) ??
      new (loadDriver<typeof pg>('pg').Pool)({
        connectionString: this.#options.connectionString,
        max: this.#max,
        // Plan each prepared statement once, as index scans (a test checks).
        options: POSTGRES_SESSION_OPTIONS
      })
    // An idle client losing its connection must not crash the host; the next query reconnects.
    pool.on('error', () => {})
    this.#pool = pool
    await this.#tx(async (c) => {
      await c.query("SELECT pg_advisory_xact_lock(hashtextextended('fastify-customer-data:migrate', 0))")
      await c.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`)
      await c.query(`CREATE TABLE IF NOT EXISTS ${this.schema}.schema_version (version integer NOT NULL)`)
      const { rows } = await c.query<{ version: number }>(`SELECT version FROM ${this.schema}.schema_version`)
      const version = rows[0]?.version ?? 0
      const all = migrations(this.schema)
      if (version > all.length) {
        throw new FST_CUSTOMER_DATA_INVALID_OPTION(`schema ${this.schema} has version ${version}, newer than this version of fastify-customer-data (${all.length}); upgrade the package`)
      }
      for (let v = version; v < all.length; v++) await c.query(all[v])
      if (rows.length === 0) await c.query(`INSERT INTO ${this.schema}.schema_version VALUES ($1)`, [all.length])
      else await c.query(`UPDATE ${this.schema}.schema_version SET version = $1`, [all.length])
    }).catch(async (err) => {
      if (this.#ownsPool) await pool.end()
      this.#pool = null
      throw err
    })
    await this.#listen()
  }

  /** Holds one connection for LISTEN; reconnects after it drops. */
  async #listen (): Promise<void> {
    if (this.#closed || this.#pool === null) return
    try {
      const client = await this.#pool.connect()
      client.on('notification', (msg) => {
        if (msg.channel !== this.#channel || msg.payload === undefined) return
        try {
          const ids = JSON.parse(msg.payload) as string[]
          if (Array.isArray(ids) && ids.length > 0) this.#events.emit('doom', ids)
        } catch {}
      })
      const drop = (): void => {
        if (this.#listener !== client) return
        this.#listener = null
        client.release(true)
        this.#scheduleListen()
      }
      client.on('error', drop)
      client.on('end', drop)
      await client.query(`LISTEN "${this.#channel}"`)
      this.#listener = client
    } catch {
      this.#scheduleListen()
    }
  }

  #scheduleListen (): void {
    if (this.#closed || this.#listenRetry !== null) return
    this.#listenRetry = setTimeout(() => {
      this.#listenRetry = null
      this.#listen().catch(() => {})
    }, 500)
    this.#listenRetry.unref()
  }

  async close (): Promise<void> {
    if (this.#pool === null || this.#closed) return
    await this.#group.idle()
    for (const batch of [...this.#batches.values()]) await this.#endBatch(batch, false)
    this.#scopes.clear()
    this.#closed = true
    if (this.#listenRetry !== null) clearTimeout(this.#listenRetry)
    const listener = this.#listener
    this.#listener = null
    if (listener !== null) {
      await listener.query(`UNLISTEN "${this.#channel}"`).catch(() => {})
      listener.release()
    }
    if (this.#ownsPool) await this.#pool.end()
    this.#pool = null
    this.#events.removeAllListeners()
  }

  async #tx<T> (fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#db.connect()
    try {
      await client.query('BEGIN')
      const result = await fn(client)
      await client.query('COMMIT')
      return result
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }

  async secret (): Promise<Buffer> {
    const s = this.schema
    await this.#db.query(`INSERT INTO ${s}.meta (key, value) VALUES ('secret', $1) ON CONFLICT (key) DO NOTHING`, [randomBytes(32)])
    const { rows } = await this.#db.query<{ value: Buffer }>(`SELECT value FROM ${s}.meta WHERE key = 'secret'`)
    return rows[0].value
  }

  /** Runs a named prepared statement of this store. */
  async #q<R> (c: Queryable, name: Statement, values: unknown[]): Promise<{ rows: R[], rowCount: number | null }> {
    return await c.query({ name: this.#names[name], text: this.#sql[name], values }) as unknown as { rows: R[], rowCount: number | null }
  }

  label (labels: readonly LabelInput[]): Promise<void> {
    try {
      for (const l of labels) checkLabel(l)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#enqueue({ labels, resolve: () => {}, reject: () => {} }).then(() => {})
  }

  /**
   * Commits share group statements with labels, and are durable before the writer goes on: a
   * commit lost in a crash would leave its label pending with no writer, which withdrawing never
   * removes (so a reused name could be erased by the old owner's deletion).
   */
  commit (leaseId: string, _now?: number, replace = false): Promise<CommitResult> {
    if (replace) return this.#commitReplacing(leaseId)
    return this.#enqueue({ leaseId, resolve: () => {}, reject: () => {} }) as Promise<CommitResult>
  }

  #enqueue (write: QueuedWrite): Promise<CommitResult | undefined> {
    if (this.#pool === null || this.#closed) return Promise.reject(new FST_CUSTOMER_DATA_CLOSED())
    return new Promise((resolve, reject) => {
      write.resolve = resolve
      write.reject = reject
      this.#group.push(write)
    })
  }

  /**
   * One group statement, so one round trip and one implicit transaction: it takes the shared
   * advisory locks of the labels' customers (before any seq, see postgresStatements().group), inserts the
   * labels and their pending rows, and commits the leases that no deletion doomed.
   */
  async #runGroup (group: QueuedWrite[]): Promise<void> {
    try {
      const leaseIds = group.flatMap((w) => w.leaseId ?? [])
      const rows = labelRows(group)
      const { rows: out } = await this.#q<GroupRow>(this.#db, 'group', [...labelColumns(rows.map((r) => r.label)), leaseIds])
      const results = commitResults(leaseIds, out.filter((r) => r.skipped === null))
      const skipped = out.filter((r) => r.skipped !== null).map((r) => rows[Number(r.skipped) - 1])
      const waiting = new Set(skipped.map((r) => r.write))
      for (const w of group) if (!waiting.has(w)) w.resolve(w.leaseId === undefined ? undefined : results.get(w.leaseId))
      if (skipped.length > 0) {
        // Off the group's path: the next groups go on while these wait for a deletion's lock.
        this.#q(this.#db, 'groupWait', labelColumns(skipped.map((r) => r.label))).then(
          () => { for (const w of waiting) w.resolve() },
          (err: Error) => { for (const w of waiting) w.reject(err) })
      }
    } catch (err) {
      for (const w of group) w.reject(err as Error)
    }
  }

  /** A replacing commit is its own transaction: rare, and it must withdraw and commit together. */
  async #commitReplacing (leaseId: string): Promise<CommitResult> {
    return await this.#tx(async (c): Promise<CommitResult> => {
      const { rows } = await this.#q<PendingRow>(c, 'leaseRows', [leaseId])
      if (rows.length === 0) return { status: 'gone' }
      const resources = distinctResources(rows.map((r) => ({ kind: r.kind, id: r.rid })))
      if (rows.some((r) => r.doomed)) return { status: 'doomed', resources }
      for (const r of resources) await this.#q(c, 'withdraw', [rows[0].instance, r.kind, [r.id]])
      await this.#q(c, 'commitLease', [leaseId])
      return { status: 'committed' }
    })
  }

  async withdraw (input: WithdrawInput): Promise<number> {
    checkWithdraw(input)
    if (input.ids.length === 0) return 0
    const { rowCount } = await this.#q(this.#db, 'withdraw', [input.instance, input.kind, input.ids])
    return rowCount ?? 0
  }

  async renew (leaseIds: readonly string[], expiresAt: number): Promise<string[]> {
    const { rows } = await this.#q<{ lease_id: string, doomed: boolean }>(this.#db, 'renew', [leaseIds, expiresAt])
    const live = new Map(rows.map((r) => [r.lease_id, r.doomed]))
    return leaseIds.filter((id) => live.get(id) !== false)
  }

  async dropLease (leaseId: string, erased: boolean): Promise<DeletionRef[]> {
    return await this.#tx(async (c) => {
      const { rows } = await this.#q<PendingRow>(c, 'leaseRows', [leaseId])
      if (rows.length === 0) return []
      // Labels a batch has erased (and deleted) meanwhile are not credited twice.
      const dropped = new Set<string>()
      const byCustomer = new Map<string, Set<PendingRow>>()
      for (const r of rows) setAdd(byCustomer, r.instance + '\u0001' + r.customer, r)
      for (const set of byCustomer.values()) {
        const mine = [...set]
        const { rows: gone } = await this.#q<{ seq: string }>(c, 'dropLabels', [mine[0].instance, mine[0].customer, mine.map((r) => r.seq)])
        for (const g of gone) dropped.add(g.seq)
      }
      await this.#q(c, 'dropPending', [leaseId])
      const credit = new Map<string, { ref: DeletionRef, resources: Array<{ kind: string, id: string }> }>()
      for (const row of rows) {
        if (!row.doomed || !dropped.has(row.seq)) continue
        const { rows: recs } = await this.#q<DeletionRef>(c, 'coveringDeletion', [row.instance, row.customer, row.seq])
        const rec = recs[0]
        if (rec === undefined) continue
        const entry = credit.get(rec.id) ?? { ref: { id: rec.id, instance: rec.instance }, resources: [] }
        entry.resources.push({ kind: row.kind, id: row.rid })
        credit.set(rec.id, entry)
      }
      if (erased) {
        for (const [id, entry] of credit) await this.#addErased(c, id, countByKind(distinctResources(entry.resources)))
      }
      return [...credit.values()].map((e) => e.ref)
    })
  }

  async #addErased (c: pg.PoolClient, deletionId: string, counts: Record<string, number>): Promise<void> {
    if (Object.keys(counts).length > 0) await this.#q(c, 'addErased', [deletionId, JSON.stringify(counts)])
  }

  async requestDeletion (input: RequestDeletionInput): Promise<{ deletion: DeletionRecord, created: boolean }> {
    checkStoreText('the instance', input.instance)
    return await this.#tx(async (c) => {
      const { instance, customer } = input
      await this.#q(c, 'customerLock', [instance + '\u0001' + customer])
      const { rows } = await this.#q<DeletionRow & { created: boolean, doomed_leases: string[] }>(c, 'record', [instance, customer, input.id, input.now])
      const { created, doomed_leases: leaseIds } = rows[0]
      for (let i = 0; i < leaseIds.length; i += NOTIFY_CHUNK) {
        await this.#q(c, 'notify', [this.#channel, JSON.stringify(leaseIds.slice(i, i + NOTIFY_CHUNK))])
      }
      return { deletion: toRecord(rows[0]), created }
    })
  }

  /**
   * Opens the batch's transaction and deletes the labels it claims in it; completeBatch commits.
   * The owner's previous batch of this deletion, if still open, is its retry: rolled back first.
   * A batch of this process held past its claimUntil is abandoned (rolled back), so its labels are
   * free again, as a claim that expired; a crashed process's batches roll back with its connections.
   */
  async claimBatch (deletionId: string, options: ClaimOptions): Promise<ClaimedLabel[]> {
    const own = this.#batches.get(batchKey(deletionId, options.owner))
    if (own !== undefined) await this.#endBatch(own, false)
    for (const b of [...this.#batches.values()]) if (b.until <= options.now) await this.#endBatch(b, false)
    // The scope is read again after every short batch, so a cover extended by a joining request
    // meanwhile is seen before the deletion tries to complete; full batches reuse it.
    let d = this.#scopes.get(deletionId)
    if (d === undefined) {
      d = (await this.#q<DeletionScope>(this.#db, 'scope', [deletionId])).rows[0]
      if (d === undefined) return []
      this.#scopes.set(deletionId, d)
    }
    const client = await this.#db.connect()
    // Held idle while the erasers run: a dropped connection must not be an unhandled 'error'
    // event; the batch's next query fails instead, and it is rolled back (the labels come back).
    const ignore = (): void => {}
    client.on('error', ignore)
    try {
      await client.query('BEGIN')
      const { rows } = await this.#q<{ seq: string, kind: string, rid: string }>(client, 'claim',
        [d.instance, d.customer, d.cover_seq, options.after ?? '0', options.now, options.limit])
      if (rows.length < options.limit) this.#scopes.delete(deletionId)
      if (rows.length === 0) {
        await client.query('ROLLBACK')
        client.off('error', ignore)
        client.release()
        return []
      }
      this.#batches.set(batchKey(deletionId, options.owner), { deletionId, owner: options.owner, client, ignore, keys: new Set(rows.map((r) => r.seq)), until: options.claimUntil })
      return rows.map((r) => ({ key: r.seq, kind: r.kind, id: r.rid }))
    } catch (err) {
      this.#scopes.delete(deletionId)
      await client.query('ROLLBACK').catch(() => {})
      client.release(true)
      throw err
    }
  }

  /** Adds the batch's counts and commits its transaction: its labels are gone for good. */
  async completeBatch (deletionId: string, keys: readonly string[], erased: Record<string, number>): Promise<void> {
    const batch = [...this.#batches.values()].find((b) => b.deletionId === deletionId && keys.length > 0 && b.keys.has(keys[0]))
    // Abandoned (rolled back) meanwhile: its labels are back, and the next pass erases them again.
    if (batch === undefined) return
    await this.#addErased(batch.client, deletionId, erased)
    await this.#endBatch(batch, true)
  }

  /** The engine's erasers failed: the batch's labels come back for the retry. */
  async abandonBatch (deletionId: string, keys: readonly string[]): Promise<void> {
    const batch = [...this.#batches.values()].find((b) => b.deletionId === deletionId && keys.length > 0 && b.keys.has(keys[0]))
    if (batch !== undefined) await this.#endBatch(batch, false)
  }

  async #endBatch (batch: OpenBatch, commit: boolean): Promise<void> {
    this.#batches.delete(batchKey(batch.deletionId, batch.owner))
    try {
      await batch.client.query(commit ? 'COMMIT' : 'ROLLBACK')
      batch.client.off('error', batch.ignore)
      batch.client.release()
    } catch (err) {
      batch.client.release(true)
      if (commit) throw err
    }
  }

  async finishDeletion (deletionId: string, now: number): Promise<DeletionRecord | null> {
    if (!isDeletionId(deletionId)) return null
    const { rows } = await this.#q<DeletionRow>(this.#db, 'finish', [deletionId, now])
    if (rows.length > 0) return toRecord(rows[0])
    const { rows: current } = await this.#q<DeletionRow>(this.#db, 'byId', [deletionId])
    return current.length > 0 ? toRecord(current[0]) : null
  }

  async getDeletion (instance: string, deletionId: string): Promise<DeletionRecord | null> {
    if (!isDeletionId(deletionId) || instance.includes('\u0000')) return null
    const { rows } = await this.#q<DeletionRow>(this.#db, 'byIdIn', [deletionId, instance])
    return rows.length > 0 ? toRecord(rows[0]) : null
  }

  async runningDeletions (limit: number): Promise<DeletionRef[]> {
    return (await this.#q<DeletionRef>(this.#db, 'running', [limit])).rows
  }

  async exportLabels (instance: string, customer: string, limit: number, cursor: string | null): Promise<ExportPage> {
    const after = parseSeqCursor(cursor).toString()
    checkStoreText('the instance', instance)
    const { rows } = await this.#q<{ seq: string, kind: string, rid: string, labeled_at: string, doomed: boolean | null }>(
      this.#db, 'exportPage', [instance, customer, after, limit + 1])
    const items = rows.slice(0, limit)
    return {
      items: items.map((r) => ({ kind: r.kind, id: r.rid, labeledAt: Number(r.labeled_at), state: labelState(r.doomed) })),
      next: rows.length > limit ? items[items.length - 1].seq : null
    }
  }

  onDoom (listener: (leaseIds: string[]) => void): () => void {
    this.#events.on('doom', listener)
    return () => { this.#events.off('doom', listener) }
  }

  // --- Operations (lib/store.ts): the deletion list, progress and the running summary. ---
  async listDeletions (instance: string, options: ListDeletionsOptions): Promise<DeletionPage> {
    const before = options.cursor === null ? { createdAt: Number.MAX_SAFE_INTEGER, id: '' } : parseDeletionCursor(options.cursor)
    // Newest first from deletions_by_instance; the row comparison starts the index scan past the cursor.
    const { rows } = await this.#db.query<DeletionRow>(
      `SELECT * FROM ${this.schema}.deletions
       WHERE instance = $1 AND ($2::text IS NULL OR status = $2) AND (created_at, id) < ($3::bigint, $4::text)
       ORDER BY created_at DESC, id DESC LIMIT $5`,
      [instance, options.status ?? null, before.createdAt, before.id, options.limit + 1])
    const items = rows.slice(0, options.limit).map(toRecord)
    return { items, next: rows.length > options.limit ? deletionCursor(items[items.length - 1]) : null }
  }

  async deletionProgress (instance: string, deletionId: string, now: number): Promise<DeletionProgress | null> {
    const s = this.schema
    const { rows } = await this.#db.query<DeletionRow & { attempts: number, failures: Record<string, KindFailure> }>(
      `SELECT * FROM ${s}.deletions WHERE id = $1 AND instance = $2`, [deletionId, instance])
    const rec = rows[0]
    if (rec === undefined) return null
    if (rec.status !== 'running') return { remaining: 0, waiting: 0, attempts: 0, failures: {} }
    // Covered labels still to erase; of them, doomed ones whose writer's lease has not expired yet
    // (their pending rows, from the small pending table).
    const { rows: counts } = await this.#db.query<{ remaining: number, waiting: number }>(
      `SELECT (SELECT count(*)::int FROM ${s}.labels WHERE instance = $1 AND customer = $2 AND seq <= $3::bigint) AS remaining,
              (SELECT count(*)::int FROM ${s}.pending WHERE instance = $1 AND customer = $2 AND seq <= $3::bigint
                 AND doomed AND lease_expires > $4) AS waiting`,
      [rec.instance, rec.customer, rec.cover_seq, now])
    return { ...counts[0], attempts: rec.attempts, failures: rec.failures }
  }

  /** One statement, so replicas noting failures of one deletion at once do not lose an attempt. */
  async noteDeletionAttempt (deletionId: string, failure: DeletionFailureInput | null): Promise<void> {
    const s = this.schema
    if (failure === null) {
      // Nothing to clear is no write (and no dead row version).
      await this.#db.query(`UPDATE ${s}.deletions SET attempts = 0, failures = '{}'
        WHERE id = $1 AND status = 'running' AND (attempts > 0 OR failures <> '{}'::jsonb)`, [deletionId])
      return
    }
    const entry = applyDeletionAttempt({ attempts: 0, failures: {} }, failure).failures
    await this.#db.query(
      `UPDATE ${s}.deletions SET attempts = attempts + 1, failures = failures || $2::jsonb WHERE id = $1 AND status = 'running'`,
      [deletionId, JSON.stringify(entry)])
  }

  async runningSummary (): Promise<RunningSummary> {
    const { rows } = await this.#db.query<{ n: number, oldest: string | null }>(
      `SELECT count(*)::int AS n, min(created_at) AS oldest FROM ${this.schema}.deletions WHERE status = 'running'`)
    return { running: rows[0].n, oldestCreatedAt: rows[0].oldest === null ? null : Number(rows[0].oldest) }
  }
}

/** A label's state from its pending row: none is committed. */
function labelState (doomed: boolean | null): LabelState {
  if (doomed === null) return 'committed'
  return doomed ? 'doomed' : 'pending'
}

function batchKey (deletionId: string, owner: string): string {
  return deletionId + '\u0000' + owner
}

/** For a fleet of replicas sharing one PostgreSQL database. */
export function postgresStore (options: PostgresStoreOptions): LabelStore {
  return new PostgresStore(options)
}
