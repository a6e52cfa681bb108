// The fleet label store on PostgreSQL (docs/ARCHITECTURE.md, "Stores"): several server replicas share one database.
// Batches are claimed with FOR UPDATE SKIP LOCKED, so any replica can run or resume a deletion;
// doom notices travel by LISTEN/NOTIFY, so a lease held on another replica aborts.
//
// As in the SQLite store, a deletion covers the labels of (instance, customer) at or below its
// cover_seq. Label inserts take a shared advisory lock on (instance, customer) and a deletion
// takes it exclusively, so a deletion sees every label acknowledged before it and every later
// label gets a higher seq.
import type pg from 'pg'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { FST_CUSTOMER_DATA_CLOSED, FST_CUSTOMER_DATA_INVALID_OPTION } from '../errors.js'
import { loadDriver } from './driver.js'
import { checkInteger, checkKnownKeys } from './store-options.js'
import {
  addCounts, checkLabel, checkStoreText, checkWithdraw, countByKind, distinctResources, isDeletionId, parseSeqCursor,
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
/** More connections than PostgreSQL's default max_connections (100) can ever serve. */
const MAX_POOL = 100
// At least 2: one connection stays checked out for LISTEN, and queries need another.
const POSTGRES_OPTIONS = ['pool', 'connectionString', 'schema', 'max'] as const

const DOOMED = 2
const STATES: LabelState[] = ['pending', 'committed', 'doomed']
const IDENT = /^[a-z_][a-z0-9_]{0,62}$/
const NOTIFY_CHUNK = 150
const FLUSHERS = 4 // concurrent group transactions // lease ids per NOTIFY payload (8000-byte limit)

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
    // v3: withdrawing a resource's labels finds them by (instance, kind, id).
    `CREATE INDEX labels_by_resource ON ${s}.labels (instance, kind, rid);`,
    // v4: operators see a deletion's failed attempts and each failing kind's last error (the list
    // route, the console); the instance's deletions are listed newest first from an index.
    `ALTER TABLE ${s}.deletions ADD COLUMN attempts integer NOT NULL DEFAULT 0;
     ALTER TABLE ${s}.deletions ADD COLUMN failures jsonb NOT NULL DEFAULT '{}';
     CREATE INDEX deletions_by_instance ON ${s}.deletions (instance, created_at, id);`
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

interface LabelRow { seq: string, instance: string, customer: string, kind: string, rid: string, state: number }

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
 * $1: sorted "instance customer" lock keys; $2–$8: label columns; $9: lease ids to commit. The
 * insert reads the lock count in its WHERE, an InitPlan evaluated before its first row, so no
 * label gets a seq before its customer's lock is held (a deletion holding the exclusive lock
 * reads max(seq) knowing no smaller seq can still appear). A lease with a doomed label is not
 * committed; the caller learns it from the returned rows.
 */
function groupSql (s: string): string {
  return `WITH locks AS (
      SELECT count(*) AS n FROM (SELECT pg_advisory_xact_lock_shared(hashtextextended(k, 0)) FROM unnest($1::text[]) AS k) AS held
    ), inserted AS (
      INSERT INTO ${s}.labels (instance, customer, kind, rid, state, lease_id, lease_expires, labeled_at)
      SELECT i, c, k, r, 0, l, e, n FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[]) AS t(i, c, k, r, l, e, n)
      WHERE (SELECT n FROM locks) >= 0
    ), target AS (
      SELECT seq, lease_id, kind, rid, state FROM ${s}.labels WHERE lease_id = ANY($9::text[]) ORDER BY seq FOR UPDATE
    ), committed AS (
      UPDATE ${s}.labels AS l SET state = 1, lease_id = NULL FROM target AS t
      WHERE l.seq = t.seq AND NOT EXISTS (SELECT 1 FROM target AS d WHERE d.lease_id = t.lease_id AND d.state = ${DOOMED})
    )
    SELECT lease_id, kind, rid, state FROM target`
}

/** A row of a lease the group committed (or found doomed). */
interface GroupRow { lease_id: string, kind: string, rid: string, state: number }

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
    else if (mine.some((r) => r.state === DOOMED)) results.set(id, { status: 'doomed', resources: distinctResources(mine.map((r) => ({ kind: r.kind, id: r.rid }))) })
    else results.set(id, { status: 'committed' })
  }
  return results
}
/** A write waiting for the next group transaction: labels to insert, or a lease to commit. */
interface QueuedWrite {
  labels?: readonly LabelInput[]
  leaseId?: string
  resolve: (result?: CommitResult) => void
  reject: (err: Error) => void
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

export class PostgresStore implements LabelStore {
  readonly schema: string
  /** The group-commit statement for this schema, built once. */
  readonly #groupSql: string
  readonly #options: PostgresStoreOptions
  readonly #max: number
  #pool: pg.Pool | null = null
  #ownsPool: boolean
  #listener: pg.PoolClient | null = null
  #listenRetry: NodeJS.Timeout | null = null
  #events = new EventEmitter()
  #queue: QueuedWrite[] = []
  #flushes = new Set<Promise<void>>()
  #flushers = 0
  #closed = false
  readonly #channel: string

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
    this.#groupSql = groupSql(schema)
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
      new (loadDriver<typeof pg>('pg').Pool)({ connectionString: this.#options.connectionString, max: this.#max })
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
    await Promise.all(this.#flushes)
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

  label (labels: readonly LabelInput[]): Promise<void> {
    try {
      for (const l of labels) checkLabel(l)
    } catch (err) {
      return Promise.reject(err)
    }
    return this.#enqueue({ labels, resolve: () => {}, reject: () => {} }).then(() => {})
  }

  /** Commits share group transactions with labels (see the SQLite store for why that is safe). */
  commit (leaseId: string, _now?: number, replace = false): Promise<CommitResult> {
    if (replace) return this.#commitReplacing(leaseId)
    return this.#enqueue({ leaseId, resolve: () => {}, reject: () => {} }) as Promise<CommitResult>
  }

  /** A replacing commit is its own transaction: rare, and it must withdraw and commit together. */
  async #commitReplacing (leaseId: string): Promise<CommitResult> {
    const s = this.schema
    return await this.#tx(async (c): Promise<CommitResult> => {
      const rows = await this.#leaseRows(c, leaseId)
      if (rows.length === 0) return { status: 'gone' }
      const resources = distinctResources(rows.map((r) => ({ kind: r.kind, id: r.rid })))
      if (rows.some((r) => r.state === DOOMED)) return { status: 'doomed', resources }
      for (const r of resources) await this.#withdrawIn(c, rows[0].instance, r.kind, [r.id], leaseId)
      await c.query(`UPDATE ${s}.labels SET state = 1, lease_id = NULL WHERE lease_id = $1`, [leaseId])
      return { status: 'committed' }
    })
  }

  async withdraw (input: WithdrawInput): Promise<number> {
    checkWithdraw(input)
    if (input.ids.length === 0) return 0
    return await this.#withdrawIn(this.#db, input.instance, input.kind, input.ids, input.exceptLease ?? '')
  }

  async #withdrawIn (c: pg.Pool | pg.PoolClient, instance: string, kind: string, ids: readonly string[], exceptLease: string): Promise<number> {
    // exceptLease '' for none: committed rows have no lease, and NULL IS DISTINCT FROM '' holds.
    const { rowCount } = await c.query(
      `DELETE FROM ${this.schema}.labels WHERE instance = $1 AND kind = $2 AND rid = ANY($3::text[]) AND state = 1 AND lease_id IS DISTINCT FROM $4`,
      [instance, kind, ids, exceptLease])
    return rowCount ?? 0
  }

  #enqueue (write: QueuedWrite): Promise<CommitResult | undefined> {
    if (this.#pool === null || this.#closed) return Promise.reject(new FST_CUSTOMER_DATA_CLOSED())
    return new Promise((resolve, reject) => {
      write.resolve = resolve
      write.reject = reject
      this.#queue.push(write)
      // Up to FLUSHERS group transactions run at once on the pool. A flusher leaves (#flushers--)
      // synchronously when the queue runs dry, so a write queued by a continuation of its last
      // group starts a new flusher instead of waiting for nobody.
      if (this.#flushers < FLUSHERS) {
        this.#flushers++
        const flush = this.#flush()
        this.#flushes.add(flush)
        flush.finally(() => { this.#flushes.delete(flush) }).catch(() => {})
      }
    })
  }

  /**
   * Group commit: every write queued while the previous group ran goes in the next one. A group is
   * one statement, so one round trip and one implicit transaction: it takes the shared advisory
   * locks of the labels' customers (before inserting, see groupSql), inserts the labels, and
   * commits the leases that no deletion doomed, returning every row of those leases.
   */
  async #flush (): Promise<void> {
    while (this.#queue.length > 0) {
      const group = this.#queue.splice(0, 1000)
      try {
        const leaseIds = group.flatMap((w) => w.leaseId ?? [])
        const { rows } = await this.#db.query<GroupRow>(
          this.#groupSql, [...labelColumns(group.flatMap((w) => w.labels ?? [])), leaseIds])
        const results = commitResults(leaseIds, rows)
        for (const w of group) w.resolve(w.leaseId === undefined ? undefined : results.get(w.leaseId))
      } catch (err) {
        for (const w of group) w.reject(err as Error)
      }
    }
    this.#flushers-- // synchronously, before the last group's continuations run
  }

  async renew (leaseIds: readonly string[], expiresAt: number): Promise<string[]> {
    const s = this.schema
    await this.#db.query(`UPDATE ${s}.labels SET lease_expires = $1 WHERE lease_id = ANY($2::text[])`, [expiresAt, leaseIds])
    const { rows } = await this.#db.query<{ lease_id: string, doomed: number }>(
      `SELECT lease_id, count(*) FILTER (WHERE state = 2)::int AS doomed FROM ${s}.labels WHERE lease_id = ANY($1::text[]) GROUP BY lease_id`, [leaseIds])
    const live = new Map(rows.map((r) => [r.lease_id, r.doomed]))
    return leaseIds.filter((id) => (live.get(id) ?? 1) > 0)
  }

  async #leaseRows (c: pg.PoolClient, leaseId: string): Promise<LabelRow[]> {
    const { rows } = await c.query<LabelRow>(
      `SELECT seq, instance, customer, kind, rid, state FROM ${this.schema}.labels WHERE lease_id = $1 ORDER BY seq FOR UPDATE`, [leaseId])
    return rows
  }

  async dropLease (leaseId: string, erased: boolean): Promise<DeletionRef[]> {
    const s = this.schema
    return await this.#tx(async (c) => {
      const rows = await this.#leaseRows(c, leaseId)
      const credit = new Map<string, { ref: DeletionRef, resources: Array<{ kind: string, id: string }> }>()
      for (const row of rows) {
        if (row.state !== DOOMED) continue
        const { rows: recs } = await c.query<DeletionRow>(
          `SELECT * FROM ${s}.deletions WHERE instance = $1 AND customer = $2 AND status = 'running' AND cover_seq >= $3 FOR UPDATE`,
          [row.instance, row.customer, row.seq])
        const rec = recs[0]
        if (rec === undefined) continue
        const entry = credit.get(rec.id) ?? { ref: { id: rec.id, instance: rec.instance }, resources: [] }
        entry.resources.push({ kind: row.kind, id: row.rid })
        credit.set(rec.id, entry)
      }
      await c.query(`DELETE FROM ${s}.labels WHERE lease_id = $1`, [leaseId])
      if (erased) {
        for (const [id, entry] of credit) await this.#addErased(c, id, countByKind(distinctResources(entry.resources)))
      }
      return [...credit.values()].map((e) => e.ref)
    })
  }

  async #addErased (c: pg.PoolClient, deletionId: string, counts: Record<string, number>): Promise<void> {
    const { rows } = await c.query<{ erased: Record<string, number> }>(`SELECT erased FROM ${this.schema}.deletions WHERE id = $1 FOR UPDATE`, [deletionId])
    if (rows.length === 0) return
    await c.query(`UPDATE ${this.schema}.deletions SET erased = $2 WHERE id = $1`, [deletionId, JSON.stringify(addCounts(rows[0].erased, counts))])
  }

  async requestDeletion (input: RequestDeletionInput): Promise<{ deletion: DeletionRecord, created: boolean }> {
    const s = this.schema
    checkStoreText('the instance', input.instance)
    return await this.#tx(async (c) => {
      const { instance, customer } = input
      await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [instance + '\u0001' + customer])
      const { rows: max } = await c.query<{ m: string | null }>(`SELECT max(seq) AS m FROM ${s}.labels WHERE instance = $1 AND customer = $2`, [instance, customer])
      const maxSeq = max[0].m ?? '0'
      const { rows: running } = await c.query<DeletionRow>(`SELECT * FROM ${s}.deletions WHERE instance = $1 AND customer = $2 AND status = 'running' FOR UPDATE`, [instance, customer])
      const created = running.length === 0
      if (created) {
        await c.query(`INSERT INTO ${s}.deletions (id, instance, customer, cover_seq, status, created_at) VALUES ($1, $2, $3, $4, 'running', $5)`,
          [input.id, instance, customer, maxSeq, input.now])
      } else {
        await c.query(`UPDATE ${s}.deletions SET cover_seq = greatest(cover_seq, $2) WHERE id = $1`, [running[0].id, maxSeq])
      }
      const { rows: doomed } = await c.query<{ lease_id: string }>(
        `UPDATE ${s}.labels SET state = 2 WHERE instance = $1 AND customer = $2 AND state = 0 RETURNING lease_id`, [instance, customer])
      const leaseIds = [...new Set(doomed.map((r) => r.lease_id))]
      for (let i = 0; i < leaseIds.length; i += NOTIFY_CHUNK) {
        await c.query('SELECT pg_notify($1, $2)', [this.#channel, JSON.stringify(leaseIds.slice(i, i + NOTIFY_CHUNK))])
      }
      const { rows } = await c.query<DeletionRow>(`SELECT * FROM ${s}.deletions WHERE instance = $1 AND customer = $2 AND status = 'running'`, [instance, customer])
      return { deletion: toRecord(rows[0]), created }
    })
  }

  /** The running deletion's scope, so batch queries carry constants the planner can use. */
  async #scope (c: pg.Pool | pg.PoolClient, deletionId: string): Promise<{ instance: string, customer: string, cover_seq: string } | undefined> {
    const { rows } = await c.query<{ instance: string, customer: string, cover_seq: string }>(
      `SELECT instance, customer, cover_seq FROM ${this.schema}.deletions WHERE id = $1 AND status = 'running'`, [deletionId])
    return rows[0]
  }

  async claimBatch (deletionId: string, options: ClaimOptions): Promise<ClaimedLabel[]> {
    const s = this.schema
    const d = await this.#scope(this.#db, deletionId)
    if (d === undefined) return []
    const { rows } = await this.#db.query<{ seq: string, kind: string, rid: string }>(
      `WITH c AS (SELECT seq FROM ${s}.labels
                  WHERE instance = $1 AND customer = $2 AND seq <= $3::bigint AND seq > $4::bigint
                    AND (state = 1 OR lease_expires <= $5)
                    AND (claim_until <= $5 OR claim_owner = $6)
                  ORDER BY seq LIMIT $7
                  FOR UPDATE SKIP LOCKED)
       UPDATE ${s}.labels l SET claim_owner = $6, claim_until = $8 FROM c WHERE l.seq = c.seq
       RETURNING l.seq, l.kind, l.rid`,
      [d.instance, d.customer, d.cover_seq, options.after ?? '0', options.now, options.owner, options.limit, options.claimUntil])
    return rows.map((r) => ({ key: r.seq, kind: r.kind, id: r.rid }))
  }

  async completeBatch (deletionId: string, keys: readonly string[], erased: Record<string, number>): Promise<void> {
    const s = this.schema
    await this.#tx(async (c) => {
      const d = await this.#scope(c, deletionId)
      if (d === undefined) return
      // Rows by primary key; the scope check only guards against a key from another deletion.
      await c.query(`DELETE FROM ${s}.labels WHERE seq = ANY($1::bigint[]) AND instance = $2 AND customer = $3 AND seq <= $4::bigint`,
        [keys, d.instance, d.customer, d.cover_seq])
      await this.#addErased(c, deletionId, erased)
    })
  }

  async finishDeletion (deletionId: string, now: number): Promise<DeletionRecord | null> {
    const s = this.schema
    const { rows } = await this.#db.query<DeletionRow>(
      `UPDATE ${s}.deletions d SET status = 'completed', completed_at = $2
       WHERE d.id = $1 AND d.status = 'running'
         AND NOT EXISTS (SELECT 1 FROM ${s}.labels l WHERE l.instance = d.instance AND l.customer = d.customer AND l.seq <= d.cover_seq)
       RETURNING *`, [deletionId, now])
    if (rows.length > 0) return toRecord(rows[0])
    const { rows: current } = await this.#db.query<DeletionRow>(`SELECT * FROM ${s}.deletions WHERE id = $1`, [deletionId])
    return current.length > 0 ? toRecord(current[0]) : null
  }

  async getDeletion (instance: string, deletionId: string): Promise<DeletionRecord | null> {
    if (!isDeletionId(deletionId) || instance.includes('\u0000')) return null
    const { rows } = await this.#db.query<DeletionRow>(`SELECT * FROM ${this.schema}.deletions WHERE id = $1 AND instance = $2`, [deletionId, instance])
    return rows.length > 0 ? toRecord(rows[0]) : null
  }

  async runningDeletions (limit: number): Promise<DeletionRef[]> {
    const { rows } = await this.#db.query<DeletionRef>(
      `SELECT id, instance FROM ${this.schema}.deletions WHERE status = 'running' ORDER BY created_at LIMIT $1`, [limit])
    return rows
  }

  async exportLabels (instance: string, customer: string, limit: number, cursor: string | null): Promise<ExportPage> {
    const s = this.schema
    const after = parseSeqCursor(cursor).toString()
    checkStoreText('the instance', instance)
    const { rows } = await this.#db.query<{ seq: string, kind: string, rid: string, labeled_at: string, state: number }>(
      `SELECT seq, kind, rid, labeled_at, state FROM ${s}.labels
       WHERE instance = $1 AND customer = $2
         AND seq > greatest($3::bigint, coalesce((SELECT cover_seq FROM ${s}.deletions WHERE instance = $1 AND customer = $2 AND status = 'running'), 0))
       ORDER BY seq LIMIT $4`, [instance, customer, after, limit + 1])
    const items = rows.slice(0, limit)
    return {
      items: items.map((r) => ({ kind: r.kind, id: r.rid, labeledAt: Number(r.labeled_at), state: STATES[r.state] })),
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
    const { rows: counts } = await this.#db.query<{ remaining: number, waiting: number }>(
      `SELECT count(*)::int AS remaining, count(*) FILTER (WHERE state = ${DOOMED} AND lease_expires > $4)::int AS waiting
       FROM ${s}.labels WHERE instance = $1 AND customer = $2 AND seq <= $3::bigint`,
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

/** For a fleet of replicas sharing one PostgreSQL database. */
export function postgresStore (options: PostgresStoreOptions): LabelStore {
  return new PostgresStore(options)
}
