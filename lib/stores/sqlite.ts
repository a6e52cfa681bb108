// The embedded label store on better-sqlite3 (docs/ARCHITECTURE.md, "Stores"): WAL, versioned migrations, one
// process. Labels are acknowledged only after the transaction that wrote them is durable; labels
// from concurrent requests share one transaction (group commit), so a busy server pays one
// fsync per event-loop turn, not one per request. The fsync itself runs off the event loop
// (see WalSync): transactions only write to the WAL, and an acknowledgement waits for the next
// fsync of the WAL file to finish while the loop goes on serving.
//
// A deletion covers the labels of (instance, customer) whose seq is at most its `cover_seq`: the
// row of every covered label need not be touched when the deletion is recorded, so recording
// costs the same for a customer with ten labels or a million. Only pending labels (writers in
// flight) are marked doomed.
import type Database from 'better-sqlite3'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { FST_CUSTOMER_DATA_CLOSED, FST_CUSTOMER_DATA_INVALID_OPTION } from '../errors.js'
import { Checkpointer } from './sqlite-checkpointer.js'
import { loadDriver } from './driver.js'
import { GroupCommit } from './group-commit.js'
import { SqliteProcessLock } from './sqlite-lock.js'
import { checkInteger, checkKnownKeys } from './store-options.js'
import { WalSync } from './sqlite-wal-sync.js'
import {
  addCounts, checkLabel, checkStoreText, checkWithdraw, countByKind, distinctResources, isDeletionId, parseSeqCursor,
  type ClaimedLabel, type ClaimOptions, type CommitResult, type DeletionRecord, type DeletionRef,
  type ExportPage, type LabelInput, type LabelState, type LabelStore, type RequestDeletionInput, type WithdrawInput
} from '../store.js'
import {
  applyDeletionAttempt, deletionCursor, parseDeletionCursor,
  type DeletionFailureInput, type DeletionPage, type DeletionProgress, type ListDeletionsOptions, type RunningSummary
} from '../store.js'

export interface SqliteStoreOptions {
  /** Database file. Created if missing. */
  path: string
  /**
   * SQLite `synchronous` level. FULL (default) makes an acknowledged label survive power loss;
   * NORMAL survives a process crash but may lose the last transactions on power loss.
   */
  synchronous?: 'FULL' | 'NORMAL'
  /** Most writes (label requests and commits) in one group transaction. Default 1000. */
  maxGroup?: number
}

export const SQLITE_DEFAULTS = {
  synchronous: 'FULL',
  maxGroup: 1000
} as const
/** A larger group holds the event loop for one transaction longer than a request should wait. */
const MAX_GROUP = 100_000
const SQLITE_OPTIONS = ['path', 'synchronous', 'maxGroup'] as const

/** A label's state as stored in the `state` column; never a bare number in SQL. */
const STATE = { pending: 0, committed: 1, doomed: 2 } as const
const { pending: PENDING, committed: COMMITTED, doomed: DOOMED } = STATE
const CHECKPOINT_MS = 200
const STATES: LabelState[] = (Object.keys(STATE) as LabelState[]).sort((a, b) => STATE[a] - STATE[b])

/** Each entry migrates the schema from version i to i + 1. */
const MIGRATIONS = [
  `CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
   CREATE TABLE labels (
     seq INTEGER PRIMARY KEY AUTOINCREMENT,
     instance TEXT NOT NULL,
     customer TEXT NOT NULL,
     kind TEXT NOT NULL,
     rid TEXT NOT NULL,
     state INTEGER NOT NULL,
     lease_id TEXT,
     lease_expires INTEGER NOT NULL DEFAULT 0,
     labeled_at INTEGER NOT NULL
   );
   CREATE INDEX labels_by_customer ON labels (instance, customer, seq);
   CREATE INDEX labels_by_lease ON labels (lease_id) WHERE lease_id IS NOT NULL;
   CREATE INDEX labels_pending ON labels (instance, customer) WHERE state = ${PENDING};
   CREATE INDEX labels_committed ON labels (instance, customer, kind, rid) WHERE state = ${COMMITTED};
   CREATE TABLE deletions (
     id TEXT PRIMARY KEY,
     instance TEXT NOT NULL,
     customer TEXT NOT NULL,
     cover_seq INTEGER NOT NULL,
     status TEXT NOT NULL,
     erased TEXT NOT NULL DEFAULT '{}',
     created_at INTEGER NOT NULL,
     completed_at INTEGER
   );
   CREATE UNIQUE INDEX deletions_running ON deletions (instance, customer) WHERE status = 'running';
   CREATE INDEX deletions_running_age ON deletions (created_at) WHERE status = 'running';`,
  // v2: a resource labeled twice keeps both labels; the index that found the older one doubled
  // the pages every commit wrote (its keys are random), for no part of the guarantee.
  'DROP INDEX labels_committed;',
  // v3: withdrawing a resource's labels finds them by (instance, kind, id).
  'CREATE INDEX labels_by_resource ON labels (instance, kind, rid);',
  // v4: operators see a deletion's failed attempts and each failing kind's last error (the list
  // route, the console); the instance's deletions are listed newest first from an index.
  `ALTER TABLE deletions ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE deletions ADD COLUMN failures TEXT NOT NULL DEFAULT '{}';
   CREATE INDEX deletions_by_instance ON deletions (instance, created_at, id);`
]
export const SQLITE_SCHEMA_VERSION = MIGRATIONS.length

interface DeletionRow {
  id: string
  instance: string
  customer: string
  cover_seq: number
  status: 'running' | 'completed'
  erased: string
  created_at: number
  completed_at: number | null
}

/** A write waiting for the next group transaction: labels to insert, or a lease to commit. */
type QueuedWrite =
  | { labels: readonly LabelInput[], leaseId?: undefined, replace?: undefined, resolve: (result?: CommitResult) => void, reject: (err: Error) => void }
  | { labels?: undefined, leaseId: string, replace: boolean, resolve: (result: CommitResult) => void, reject: (err: Error) => void }

interface LabelRow { seq: number, instance: string, customer: string, kind: string, rid: string, state: number }

/** Every statement, prepared once. */

function prepareStatements (db: Database.Database) {
  return {
    getMeta: db.prepare<[string], { value: Buffer }>('SELECT value FROM meta WHERE key = ?'),
    putMeta: db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)'),
    insert: db.prepare(`INSERT INTO labels (instance, customer, kind, rid, state, lease_id, lease_expires, labeled_at) VALUES (?, ?, ?, ?, ${PENDING}, ?, ?, ?)`),
    renew: db.prepare('UPDATE labels SET lease_expires = ? WHERE lease_id = ?'),
    leaseRows: db.prepare<[string], LabelRow>('SELECT seq, instance, customer, kind, rid, state FROM labels WHERE lease_id = ?'),
    leaseState: db.prepare<[string], { n: number, doomed: number }>(`SELECT count(*) AS n, coalesce(sum(state = ${DOOMED}), 0) AS doomed FROM labels WHERE lease_id = ?`),
    coverSeq: db.prepare<[string, string], { cover_seq: number }>("SELECT cover_seq FROM deletions WHERE instance = ? AND customer = ? AND status = 'running'"),
    // One statement in the common case: it commits unless a deletion doomed one of the lease's labels.
    commitLease: db.prepare(`UPDATE labels SET state = ${COMMITTED}, lease_id = NULL WHERE lease_id = ?
      AND NOT EXISTS (SELECT 1 FROM labels WHERE lease_id = ? AND state = ${DOOMED})`),
    deleteRow: db.prepare('DELETE FROM labels WHERE seq = ?'),
    withdraw: db.prepare<[string, string, string, string], { seq: number }>(
      // The last parameter is the excepted lease, '' for none: `NULL IS NOT ''` holds for committed rows.
      `DELETE FROM labels WHERE instance = ? AND kind = ? AND rid = ? AND state = ${COMMITTED} AND lease_id IS NOT ? RETURNING seq`),
    running: db.prepare<[string, string], DeletionRow>("SELECT * FROM deletions WHERE instance = ? AND customer = ? AND status = 'running'"),
    byId: db.prepare<[string], DeletionRow>('SELECT * FROM deletions WHERE id = ?'),
    maxSeq: db.prepare<[string, string], { m: number | null }>('SELECT max(seq) AS m FROM labels WHERE instance = ? AND customer = ?'),
    insertDeletion: db.prepare("INSERT INTO deletions (id, instance, customer, cover_seq, status, created_at) VALUES (?, ?, ?, ?, 'running', ?)"),
    extendCover: db.prepare('UPDATE deletions SET cover_seq = ? WHERE id = ?'),
    pendingLeases: db.prepare<[string, string], { lease_id: string }>(`SELECT DISTINCT lease_id FROM labels WHERE instance = ? AND customer = ? AND state = ${PENDING}`),
    doom: db.prepare(`UPDATE labels SET state = ${DOOMED} WHERE instance = ? AND customer = ? AND state = ${PENDING}`),
    claimable: db.prepare<[string, string, number, number, number], { seq: number, kind: string, rid: string }>(
      `SELECT seq, kind, rid FROM labels
       WHERE instance = ? AND customer = ? AND seq <= ? AND seq > ? AND (state = ${COMMITTED} OR lease_expires <= ?)
       ORDER BY seq`),
    deleteCovered: db.prepare(`DELETE FROM labels WHERE seq IN (SELECT value FROM json_each(?))
      AND instance = ? AND customer = ? AND seq <= ?`),
    setErased: db.prepare('UPDATE deletions SET erased = ? WHERE id = ?'),
    anyCovered: db.prepare<[string, string, number], { seq: number }>('SELECT seq FROM labels WHERE instance = ? AND customer = ? AND seq <= ? LIMIT 1'),
    complete: db.prepare("UPDATE deletions SET status = 'completed', completed_at = ? WHERE id = ?"),
    runningList: db.prepare<[number], DeletionRef>("SELECT id, instance FROM deletions WHERE status = 'running' ORDER BY created_at LIMIT ?"),
    exportPage: db.prepare<[string, string, number, number], { seq: number, kind: string, rid: string, labeled_at: number, state: number }>(
      'SELECT seq, kind, rid, labeled_at, state FROM labels WHERE instance = ? AND customer = ? AND seq > ? ORDER BY seq LIMIT ?')
  }
}

/** The deletion columns schema v4 added for operators. */
interface OpsColumns { attempts: number, failures: string }

/** The operations statements (lib/store.ts), prepared once per connection. */
function prepareOpsStatements (db: Database.Database) {
  // Newest first from deletions_by_instance; the row value compares past the cursor in the index.
  const page = 'AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?'
  return {
    listAll: db.prepare(`SELECT * FROM deletions WHERE instance = ? ${page}`),
    listStatus: db.prepare(`SELECT * FROM deletions WHERE instance = ? AND status = ? ${page}`),
    covered: db.prepare(`SELECT count(*) AS remaining, coalesce(sum(state = ${DOOMED} AND lease_expires > ?), 0) AS waiting
      FROM labels WHERE instance = ? AND customer = ? AND seq <= ?`),
    setAttempts: db.prepare('UPDATE deletions SET attempts = ?, failures = ? WHERE id = ?'),
    summary: db.prepare("SELECT count(*) AS n, min(created_at) AS oldest FROM deletions WHERE status = 'running'")
  }
}

function toRecord (row: DeletionRow): DeletionRecord {
  return {
    id: row.id,
    instance: row.instance,
    customer: row.customer,
    status: row.status,
    erased: JSON.parse(row.erased),
    createdAt: row.created_at,
    completedAt: row.completed_at
  }
}

export class SqliteStore implements LabelStore {
  readonly path: string
  readonly #synchronous: 'FULL' | 'NORMAL'
  readonly #group: GroupCommit<QueuedWrite>
  #db: Database.Database | null = null
  #events = new EventEmitter()
  /**
   * Batch claims live in memory: one process owns the file, so a claim could only ever be
   * contested within it, and a crash releases them all.
   */
  #claims = new Map<number, { owner: string, until: number }>()
  #checkpointer: Checkpointer | null = null
  /** Null with synchronous NORMAL: nothing waits for the disk. */
  #wal: WalSync | null = null
  #checkpointTimer: NodeJS.Timeout | null = null
  /** Null for ':memory:', which no other process can open. */
  #lock: SqliteProcessLock | null = null
  #q!: ReturnType<typeof prepareStatements>

  constructor (options: SqliteStoreOptions) {
    checkKnownKeys('sqliteStore', options, SQLITE_OPTIONS)
    if (typeof options.path !== 'string' || options.path.length === 0 || options.path.includes('\u0000')) {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION('sqliteStore needs { path: "<file>.db" }')
    }
    const synchronous = options.synchronous ?? SQLITE_DEFAULTS.synchronous
    if (synchronous !== 'FULL' && synchronous !== 'NORMAL') throw new FST_CUSTOMER_DATA_INVALID_OPTION('sqliteStore synchronous must be "FULL" or "NORMAL"')
    this.path = options.path
    this.#synchronous = synchronous
    const maxGroup = checkInteger('sqliteStore maxGroup', options.maxGroup, { min: 1, max: MAX_GROUP }, SQLITE_DEFAULTS.maxGroup)
    // A group runs synchronously on the event loop: one flusher, never stalled.
    this.#group = new GroupCommit((group) => { this.#runGroup(group) }, { maxGroup, maxFlushers: 1, stallMs: 0 })
    this.#events.setMaxListeners(0)
  }

  get #conn (): Database.Database {
    if (this.#db === null) throw new FST_CUSTOMER_DATA_CLOSED()
    return this.#db
  }

  async open (): Promise<void> {
    if (this.#db !== null) return
    const Driver = loadDriver<typeof Database>('better-sqlite3')
    const lock = this.path === ':memory:' ? null : SqliteProcessLock.acquire(this.path)
    let db: Database.Database | null = null
    try {
      db = new Driver(this.path)
      this.#prepare(db)
    } catch (err) {
      db?.close()
      lock?.release()
      throw err
    }
    this.#lock = lock
  }

  /** Sets the connection up and migrates the schema; the caller closes `db` if it throws. */
  #prepare (db: Database.Database): void {
    // ':memory:' (and a file system without shared memory) cannot use WAL: there SQLite syncs itself.
    const wal = db.pragma('journal_mode = WAL', { simple: true }) === 'wal'
    // FULL durability comes from WalSync, which fsyncs the WAL off the event loop before anything
    // is acknowledged; SQLite itself only has to sync around checkpoints, which NORMAL does.
    db.pragma(`synchronous = ${wal ? 'NORMAL' : this.#synchronous}`)
    db.pragma('secure_delete = ON') // erased rows are overwritten with zeros, not left in free pages
    db.pragma('busy_timeout = 5000')
    db.pragma('foreign_keys = OFF')
    db.pragma('wal_autocheckpoint = 0') // the checkpointer worker does it, off the event loop
    const version = db.pragma('user_version', { simple: true }) as number
    if (version > MIGRATIONS.length) {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION(`${this.path} has schema version ${version}, newer than this version of fastify-customer-data (${MIGRATIONS.length}); upgrade the package`)
    }
    db.transaction(() => {
      for (let v = version; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v])
      db.pragma(`user_version = ${MIGRATIONS.length}`)
    }).immediate()
    this.#q = prepareStatements(db)
    if (wal && this.#synchronous === 'FULL') this.#wal = WalSync.open(this.path)
    this.#db = db
    this.#checkpointer = new Checkpointer(this.path)
    this.#checkpointTimer = setInterval(() => { this.#checkpointer?.nudge() }, CHECKPOINT_MS)
    this.#checkpointTimer.unref()
  }

  async close (): Promise<void> {
    if (this.#db === null) return
    this.#group.flushNow()
    if (this.#checkpointTimer !== null) clearInterval(this.#checkpointTimer)
    this.#checkpointTimer = null
    await this.#checkpointer?.close()
    this.#checkpointer = null
    await this.#wal?.close()
    this.#wal = null
    this.#db.close() // the last connection to close checkpoints and removes the WAL
    this.#db = null
    this.#lock?.release()
    this.#lock = null
    this.#claims.clear()
    this.#events.removeAllListeners()
  }

  async secret (): Promise<Buffer> {
    const row = this.#q.getMeta.get('secret')
    if (row !== undefined) return row.value
    this.#q.putMeta.run('secret', randomBytes(32))
    await this.#durable()
    return (this.#q.getMeta.get('secret') as { value: Buffer }).value
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
   * Commits join the same group transactions as labels. They need not be durable before the
   * writer goes on: a commit lost in a crash leaves the label pending, and a deletion still
   * covers pending labels.
   */
  commit (leaseId: string, _now?: number, replace = false): Promise<CommitResult> {
    return this.#enqueue({ leaseId, replace, resolve: () => {}, reject: () => {} }) as Promise<CommitResult>
  }

  /** Durable before it resolves: a withdrawal lost in a crash would bring a stale label back. */
  async withdraw (input: WithdrawInput): Promise<number> {
    checkWithdraw(input)
    const removed = this.#conn.transaction(() => {
      let n = 0
      for (const id of input.ids) n += this.#withdrawNow(input.instance, input.kind, id, input.exceptLease ?? '')
      return n
    }).immediate()
    await this.#durable()
    return removed
  }

  #withdrawNow (instance: string, kind: string, id: string, exceptLease: string): number {
    const rows = this.#q.withdraw.all(instance, kind, id, exceptLease)
    for (const r of rows) this.#claims.delete(r.seq)
    return rows.length
  }

  #enqueue (write: QueuedWrite): Promise<CommitResult | undefined> {
    if (this.#db === null) return Promise.reject(new FST_CUSTOMER_DATA_CLOSED())
    return new Promise((resolve, reject) => {
      write.resolve = resolve
      write.reject = reject
      this.#group.push(write)
    })
  }

  /** Resolves once everything committed so far is on disk (at once with synchronous NORMAL). */
  #durable (): Promise<void> {
    return this.#wal === null ? Promise.resolve() : this.#wal.sync()
  }

  /** One group transaction: commits resolve when it ends; labels when it is durable. */
  #runGroup (group: QueuedWrite[]): void {
    let results: Array<CommitResult | undefined>
    try {
      results = this.#conn.transaction(() => group.map((write) => {
        if (write.leaseId !== undefined) return this.#commitNow(write.leaseId, write.replace)
        for (const l of write.labels) {
          for (const customer of l.customers) this.#q.insert.run(l.instance, customer, l.kind, l.id, l.leaseId, l.expiresAt, l.now)
        }
        return undefined
      })).immediate()
    } catch (err) {
      for (const write of group) write.reject(err as Error)
      return
    }
    // Labels and replacing commits wait for the disk (a lost withdrawal would bring stale labels
    // back); plain commits need not (a lost one leaves its label pending, which deletions cover).
    const durable: Array<() => void> = []
    const rejects: Array<(err: Error) => void> = []
    group.forEach((write, i) => {
      if (write.leaseId !== undefined && !write.replace) { write.resolve(results[i] as CommitResult); return }
      durable.push(() => { (write.resolve as (r?: CommitResult) => void)(results[i]) })
      rejects.push(write.reject)
    })
    if (durable.length > 0) {
      this.#durable().then(
        () => { for (const resolve of durable) resolve() },
        (err: Error) => { for (const reject of rejects) reject(err) })
    }
  }

  async renew (leaseIds: readonly string[], expiresAt: number): Promise<string[]> {
    const lost: string[] = []
    this.#conn.transaction(() => {
      for (const leaseId of leaseIds) {
        this.#q.renew.run(expiresAt, leaseId)
        const s = this.#q.leaseState.get(leaseId) as { n: number, doomed: number }
        if (s.n === 0 || s.doomed > 0) lost.push(leaseId)
      }
    }).immediate()
    return lost
  }

  #coverSeq (instance: string, customer: string): number {
    return this.#q.coverSeq.get(instance, customer)?.cover_seq ?? 0
  }

  #commitNow (leaseId: string, replace: boolean): CommitResult {
    if (replace) {
      const rows = this.#q.leaseRows.all(leaseId)
      if (rows.length === 0) return { status: 'gone' }
      if (rows.some((r) => r.state === DOOMED)) return { status: 'doomed', resources: distinctResources(rows.map((r) => ({ kind: r.kind, id: r.rid }))) }
      for (const r of distinctResources(rows.map((r) => ({ kind: r.kind, id: r.rid })))) this.#withdrawNow(rows[0].instance, r.kind, r.id, leaseId)
    }
    if (this.#q.commitLease.run(leaseId, leaseId).changes > 0) return { status: 'committed' }
    const rows = this.#q.leaseRows.all(leaseId) // nothing committed: no labels left, or doomed ones
    if (rows.length === 0) return { status: 'gone' }
    return { status: 'doomed', resources: distinctResources(rows.map((r) => ({ kind: r.kind, id: r.rid }))) }
  }

  async dropLease (leaseId: string, erased: boolean): Promise<DeletionRef[]> {
    return this.#conn.transaction((): DeletionRef[] => {
      const rows = this.#q.leaseRows.all(leaseId)
      const credit = new Map<string, { rec: DeletionRow, resources: Array<{ kind: string, id: string }> }>()
      for (const row of rows) {
        if (row.state === DOOMED) {
          const rec = this.#q.running.get(row.instance, row.customer)
          if (rec !== undefined && row.seq <= rec.cover_seq) {
            const entry = credit.get(rec.id) ?? { rec, resources: [] }
            entry.resources.push({ kind: row.kind, id: row.rid })
            credit.set(rec.id, entry)
          }
        }
        this.#q.deleteRow.run(row.seq)
      }
      const refs: DeletionRef[] = []
      for (const { rec, resources } of credit.values()) {
        if (erased) this.#q.setErased.run(JSON.stringify(addCounts(JSON.parse(rec.erased), countByKind(distinctResources(resources)))), rec.id)
        refs.push({ id: rec.id, instance: rec.instance })
      }
      return refs
    }).immediate()
  }

  async requestDeletion (input: RequestDeletionInput): Promise<{ deletion: DeletionRecord, created: boolean }> {
    checkStoreText('the instance', input.instance)
    let doomed: string[] = []
    const result = this.#conn.transaction(() => {
      const { instance, customer } = input
      const maxSeq = this.#q.maxSeq.get(instance, customer)?.m ?? 0
      let row = this.#q.running.get(instance, customer)
      const created = row === undefined
      if (row === undefined) {
        this.#q.insertDeletion.run(input.id, instance, customer, maxSeq, input.now)
      } else if (maxSeq > row.cover_seq) {
        this.#q.extendCover.run(maxSeq, row.id) // a joined request also covers what was labeled since
      }
      doomed = this.#q.pendingLeases.all(instance, customer).map((r) => r.lease_id)
      if (doomed.length > 0) this.#q.doom.run(instance, customer)
      row = this.#q.running.get(instance, customer) as DeletionRow
      return { deletion: toRecord(row), created }
    }).immediate()
    if (doomed.length > 0) queueMicrotask(() => this.#events.emit('doom', doomed))
    await this.#durable()
    return result
  }

  async claimBatch (deletionId: string, options: ClaimOptions): Promise<ClaimedLabel[]> {
    const rec = this.#q.byId.get(deletionId)
    if (rec === undefined || rec.status !== 'running') return []
    const out: ClaimedLabel[] = []
    for (const r of this.#q.claimable.iterate(rec.instance, rec.customer, rec.cover_seq, Number(options.after ?? 0), options.now)) {
      const claim = this.#claims.get(r.seq)
      if (claim !== undefined && claim.owner !== options.owner && claim.until > options.now) continue
      this.#claims.set(r.seq, { owner: options.owner, until: options.claimUntil })
      out.push({ key: String(r.seq), kind: r.kind, id: r.rid })
      if (out.length >= options.limit) break
    }
    return out
  }

  /**
   * Not waited on to be durable: if a crash loses it, the rows and their erased counts are lost
   * together, and the resumed deletion erases those resources again (erasers are idempotent).
   */
  async completeBatch (deletionId: string, keys: readonly string[], erased: Record<string, number>): Promise<void> {
    this.#conn.transaction(() => {
      const rec = this.#q.byId.get(deletionId)
      if (rec === undefined) return
      this.#q.deleteCovered.run(`[${keys.map(Number).join(',')}]`, rec.instance, rec.customer, rec.cover_seq)
      for (const key of keys) this.#claims.delete(Number(key))
      this.#q.setErased.run(JSON.stringify(addCounts(JSON.parse(rec.erased), erased)), deletionId)
    }).immediate()
  }

  async finishDeletion (deletionId: string, now: number): Promise<DeletionRecord | null> {
    const rec = this.#conn.transaction((): DeletionRecord | null => {
      const rec = this.#q.byId.get(deletionId)
      if (rec === undefined) return null
      if (rec.status === 'running' && this.#q.anyCovered.get(rec.instance, rec.customer, rec.cover_seq) === undefined) {
        this.#q.complete.run(now, deletionId)
        return toRecord(this.#q.byId.get(deletionId) as DeletionRow)
      }
      return toRecord(rec)
    }).immediate()
    await this.#durable() // "completed" is an answer to a customer: it must survive a crash
    return rec
  }

  async getDeletion (instance: string, deletionId: string): Promise<DeletionRecord | null> {
    if (!isDeletionId(deletionId) || instance.includes('\u0000')) return null
    const rec = this.#q.byId.get(deletionId)
    return rec !== undefined && rec.instance === instance ? toRecord(rec) : null
  }

  async runningDeletions (limit: number): Promise<DeletionRef[]> {
    return this.#q.runningList.all(limit)
  }

  async exportLabels (instance: string, customer: string, limit: number, cursor: string | null): Promise<ExportPage> {
    checkStoreText('the instance', instance)
    const after = Math.max(Number(parseSeqCursor(cursor)), this.#coverSeq(instance, customer))
    const rows = this.#q.exportPage.all(instance, customer, after, limit + 1)
    const more = rows.length > limit
    const items = rows.slice(0, limit)
    return {
      items: items.map((r) => ({ kind: r.kind, id: r.rid, labeledAt: r.labeled_at, state: STATES[r.state] })),
      next: more ? String(items[items.length - 1].seq) : null
    }
  }

  onDoom (listener: (leaseIds: string[]) => void): () => void {
    this.#events.on('doom', listener)
    return () => { this.#events.off('doom', listener) }
  }

  /** Moves the WAL into the database and truncates it, so erased rows linger in no file. */
  async compact (): Promise<void> {
    if (this.#checkpointer === null) throw new FST_CUSTOMER_DATA_CLOSED()
    await this.#checkpointer.checkpoint('TRUNCATE')
  }

  // --- Operations (lib/store.ts): the deletion list, progress and the running summary. ---
  #opsStatements: { db: Database.Database, q: ReturnType<typeof prepareOpsStatements> } | null = null

  get #ops (): ReturnType<typeof prepareOpsStatements> {
    const db = this.#conn
    if (this.#opsStatements?.db !== db) this.#opsStatements = { db, q: prepareOpsStatements(db) }
    return this.#opsStatements.q
  }

  async listDeletions (instance: string, options: ListDeletionsOptions): Promise<DeletionPage> {
    const before = options.cursor === null ? { createdAt: Number.MAX_SAFE_INTEGER, id: '' } : parseDeletionCursor(options.cursor)
    const q = options.status === undefined ? this.#ops.listAll : this.#ops.listStatus
    const args = options.status === undefined
      ? [instance, before.createdAt, before.id, options.limit + 1]
      : [instance, options.status, before.createdAt, before.id, options.limit + 1]
    const rows = q.all(...args) as DeletionRow[]
    const items = rows.slice(0, options.limit).map(toRecord)
    return { items, next: rows.length > options.limit ? deletionCursor(items[items.length - 1]) : null }
  }

  async deletionProgress (instance: string, deletionId: string, now: number): Promise<DeletionProgress | null> {
    const rec = this.#q.byId.get(deletionId) as (DeletionRow & OpsColumns) | undefined
    if (rec === undefined || rec.instance !== instance) return null
    if (rec.status !== 'running') return { remaining: 0, waiting: 0, attempts: 0, failures: {} }
    const c = this.#ops.covered.get(now, rec.instance, rec.customer, rec.cover_seq) as { remaining: number, waiting: number }
    return { remaining: c.remaining, waiting: c.waiting, attempts: rec.attempts, failures: JSON.parse(rec.failures) }
  }

  async noteDeletionAttempt (deletionId: string, failure: DeletionFailureInput | null): Promise<void> {
    this.#conn.transaction(() => {
      const rec = this.#q.byId.get(deletionId) as (DeletionRow & OpsColumns) | undefined
      if (rec === undefined || rec.status !== 'running') return
      if (failure === null && rec.attempts === 0 && rec.failures === '{}') return // nothing to clear: no write
      const next = applyDeletionAttempt({ attempts: rec.attempts, failures: JSON.parse(rec.failures) }, failure)
      this.#ops.setAttempts.run(next.attempts, JSON.stringify(next.failures), deletionId)
    }).immediate()
  }

  async runningSummary (): Promise<RunningSummary> {
    const row = this.#ops.summary.get() as { n: number, oldest: number | null }
    return { running: row.n, oldestCreatedAt: row.oldest }
  }
}

/** The embedded default: one process, durable across crashes (and power loss with synchronous FULL). */
export function sqliteStore (options: SqliteStoreOptions): LabelStore {
  return new SqliteStore(options)
}
