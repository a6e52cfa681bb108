// The embedded label store on better-sqlite3 (docs/ARCHITECTURE.md, "Stores"): WAL, versioned migrations, one
// process. Labels are acknowledged only after the transaction that wrote them is durable; labels
// from concurrent requests share one transaction (group commit), so a busy server pays one
// fsync per event-loop turn, not one per request. The fsync itself runs off the event loop
// (see WalSync): transactions only write to the WAL, and an acknowledgement waits for the next
// fsync of the WAL file to finish while the loop goes on serving.
//
// Layout (docs/ARCHITECTURE.md, "Store layout"): a label row is written once and never updated.
// What changes while its writer works (lease, expiry, doomed) lives in this process's memory,
// which is sound because one process owns the file (a lock file refuses a second one): after a
// crash no writer of the old process is alive, so its labels are simply committed ones, which
// deletions erase. A commit therefore runs no SQL at all. A deletion covers the labels of
// (instance, customer) whose seq is at most its `cover_seq`, so recording one costs the same for
// a customer with ten labels or a million; only pending labels (writers in flight) are doomed.
import type Database from 'better-sqlite3'
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { FST_CUSTOMER_DATA_CLOSED, FST_CUSTOMER_DATA_INVALID_OPTION } from '../errors.js'
import { Checkpointer } from './sqlite-checkpointer.js'
import { loadDriver } from './driver.js'
import { GroupCommit } from './group-commit.js'
import { setAdd, setDelete } from './multimap.js'
import { SqliteProcessLock } from './sqlite-lock.js'
import { checkBoolean, checkInteger, checkKnownKeys } from '../options.js'
import { WalSync } from './sqlite-wal-sync.js'
import { SqliteThreadStore } from './sqlite-thread.js'
import {
  addCounts, checkLabel, checkStoreText, checkWithdraw, isDeletionId, parseSeqCursor,
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
  /**
   * Run the store in a worker thread of its own: the event loop only passes messages, so a label
   * costs it a few µs instead of the row's insert (README, "Stores"). Default false.
   */
  thread?: boolean
}

export const SQLITE_DEFAULTS = {
  synchronous: 'FULL',
  maxGroup: 1000,
  thread: false
} as const
/** A larger group holds the event loop for one transaction longer than a request should wait. */
const MAX_GROUP = 100_000
const SQLITE_OPTIONS = ['path', 'synchronous', 'maxGroup', 'thread'] as const

const CHECKPOINT_MS = 200

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
   CREATE INDEX labels_pending ON labels (instance, customer) WHERE state = 0;
   CREATE INDEX labels_committed ON labels (instance, customer, kind, rid) WHERE state = 1;
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
   CREATE INDEX deletions_by_instance ON deletions (instance, created_at, id);`,
  // v5: a label is written once; its writer's state lives in the owning process's memory (see the
  // top of this file), so the lease and pending indexes go, and with them the state and lease
  // columns. Labels pending or doomed in the old layout belonged to a process that is gone: they
  // become plain labels, which covering deletions erase.
  `DROP INDEX labels_by_lease;
   DROP INDEX labels_pending;
   ALTER TABLE labels DROP COLUMN state;
   ALTER TABLE labels DROP COLUMN lease_id;
   ALTER TABLE labels DROP COLUMN lease_expires;`
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
interface QueuedWrite { labels: readonly LabelInput[], resolve: (result?: CommitResult) => void, reject: (err: Error) => void }

/** A lease's labels while its writer works. */
interface PendingLease {
  id: string
  instance: string
  kind: string
  rid: string
  /** The label rows, with the customer each is for. */
  rows: Array<{ seq: number, customer: string }>
  expiresAt: number
  doomed: boolean
}

/** Every statement, prepared once. */

function prepareStatements (db: Database.Database) {
  return {
    getMeta: db.prepare<[string], { value: Buffer }>('SELECT value FROM meta WHERE key = ?'),
    putMeta: db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)'),
    insert: db.prepare<[string, string, string, string, number]>('INSERT INTO labels (instance, customer, kind, rid, labeled_at) VALUES (?, ?, ?, ?, ?)'),
    coverSeq: db.prepare<[string, string], { cover_seq: number }>("SELECT cover_seq FROM deletions WHERE instance = ? AND customer = ? AND status = 'running'"),
    deleteRow: db.prepare('DELETE FROM labels WHERE seq = ?'),
    byResource: db.prepare<[string, string, string], { seq: number }>('SELECT seq FROM labels WHERE instance = ? AND kind = ? AND rid = ?'),
    running: db.prepare<[string, string], DeletionRow>("SELECT * FROM deletions WHERE instance = ? AND customer = ? AND status = 'running'"),
    byId: db.prepare<[string], DeletionRow>('SELECT * FROM deletions WHERE id = ?'),
    maxSeq: db.prepare<[string, string], { m: number | null }>('SELECT max(seq) AS m FROM labels WHERE instance = ? AND customer = ?'),
    insertDeletion: db.prepare("INSERT INTO deletions (id, instance, customer, cover_seq, status, created_at) VALUES (?, ?, ?, ?, 'running', ?)"),
    extendCover: db.prepare('UPDATE deletions SET cover_seq = ? WHERE id = ?'),
    claimable: db.prepare<[string, string, number, number], { seq: number, kind: string, rid: string }>(
      'SELECT seq, kind, rid FROM labels WHERE instance = ? AND customer = ? AND seq <= ? AND seq > ? ORDER BY seq'),
    deleteCovered: db.prepare(`DELETE FROM labels WHERE seq IN (SELECT value FROM json_each(?))
      AND instance = ? AND customer = ? AND seq <= ?`),
    setErased: db.prepare('UPDATE deletions SET erased = ? WHERE id = ?'),
    anyCovered: db.prepare<[string, string, number], { seq: number }>('SELECT seq FROM labels WHERE instance = ? AND customer = ? AND seq <= ? LIMIT 1'),
    complete: db.prepare("UPDATE deletions SET status = 'completed', completed_at = ? WHERE id = ?"),
    runningList: db.prepare<[number], DeletionRef>("SELECT id, instance FROM deletions WHERE status = 'running' ORDER BY created_at LIMIT ?"),
    exportPage: db.prepare<[string, string, number, number], { seq: number, kind: string, rid: string, labeled_at: number }>(
      'SELECT seq, kind, rid, labeled_at FROM labels WHERE instance = ? AND customer = ? AND seq > ? ORDER BY seq LIMIT ?')
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
    covered: db.prepare('SELECT count(*) AS remaining FROM labels WHERE instance = ? AND customer = ? AND seq <= ?'),
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
  /** Leases whose writers are at work, by id; by label seq; by instance + customer (docs/ARCHITECTURE.md, "Store layout"). */
  #leases = new Map<string, PendingLease>()
  #pendingSeqs = new Map<number, PendingLease>()
  #byCustomer = new Map<string, Set<PendingLease>>()
  #checkpointer: Checkpointer | null = null
  /** Null with synchronous NORMAL: nothing waits for the disk. */
  #wal: WalSync | null = null
  #checkpointTimer: NodeJS.Timeout | null = null
  /** Null for ':memory:', which no other process can open. */
  #lock: SqliteProcessLock | null = null
  #q!: ReturnType<typeof prepareStatements>

  /** The caller took the file's process lock itself (a thread store takes it in the host's thread). */
  readonly #callerHoldsLock: boolean
  #closing: Promise<void> | null = null

  constructor (options: SqliteStoreOptions, internal: { callerHoldsLock?: boolean } = {}) {
    const { path, synchronous, maxGroup } = checkSqliteOptions(options)
    this.#callerHoldsLock = internal.callerHoldsLock === true
    this.path = path
    this.#synchronous = synchronous
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
    const lock = this.path === ':memory:' || this.#callerHoldsLock ? null : SqliteProcessLock.acquire(this.path)
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

  /** Closes once: callers that come while it closes wait for the same close. */
  close (): Promise<void> {
    this.#closing ??= this.#close().finally(() => { this.#closing = null })
    return this.#closing
  }

  async #close (): Promise<void> {
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
    this.#leases.clear()
    this.#pendingSeqs.clear()
    this.#byCustomer.clear()
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
   * A commit forgets the lease: its labels are plain labels from now on. No SQL runs, and nothing
   * need be durable: after a crash every label is a plain one anyway. A replacing commit withdraws
   * the resource's other labels in a durable transaction first.
   */
  async commit (leaseId: string, _now?: number, replace = false): Promise<CommitResult> {
    if (this.#db === null) throw new FST_CUSTOMER_DATA_CLOSED()
    const lease = this.#leases.get(leaseId)
    if (lease === undefined) return { status: 'gone' }
    if (lease.doomed) return { status: 'doomed', resources: [{ kind: lease.kind, id: lease.rid }] }
    if (replace) {
      this.#conn.transaction(() => { this.#withdrawNow(lease.instance, lease.kind, lease.rid) }).immediate()
      this.#forget(lease)
      await this.#durable()
      return { status: 'committed' }
    }
    this.#forget(lease)
    return { status: 'committed' }
  }

  /** Durable before it resolves: a withdrawal lost in a crash would bring a stale label back. */
  async withdraw (input: WithdrawInput): Promise<number> {
    checkWithdraw(input)
    const removed = this.#conn.transaction(() => {
      let n = 0
      for (const id of input.ids) n += this.#withdrawNow(input.instance, input.kind, id)
      return n
    }).immediate()
    await this.#durable()
    return removed
  }

  /** Deletes the committed labels of one resource: every label of it that no live lease holds. */
  #withdrawNow (instance: string, kind: string, id: string): number {
    let removed = 0
    for (const { seq } of this.#q.byResource.all(instance, kind, id)) {
      if (this.#pendingSeqs.has(seq)) continue
      this.#q.deleteRow.run(seq)
      this.#claims.delete(seq)
      removed++
    }
    return removed
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

  /** One group transaction of label inserts; they resolve once it is durable. */
  #runGroup (group: QueuedWrite[]): void {
    let leases: PendingLease[]
    try {
      leases = this.#conn.transaction(() => group.flatMap((write) => write.labels.map((l): PendingLease => ({
        id: l.leaseId,
        instance: l.instance,
        kind: l.kind,
        rid: l.id,
        rows: l.customers.map((customer) => ({ customer, seq: Number(this.#q.insert.run(l.instance, customer, l.kind, l.id, l.now).lastInsertRowid) })),
        expiresAt: l.expiresAt,
        doomed: false
      })))).immediate()
    } catch (err) {
      for (const write of group) write.reject(err as Error)
      return
    }
    // The leases exist from the moment their rows do: a deletion recorded from now on dooms them.
    for (const lease of leases) this.#remember(lease)
    this.#durable().then(
      () => { for (const write of group) write.resolve() },
      (err: Error) => { for (const write of group) write.reject(err) })
  }

  #remember (lease: PendingLease): void {
    const known = this.#leases.get(lease.id)
    if (known !== undefined) {
      known.rows.push(...lease.rows) // the same lease labeled again
      lease = known
    } else {
      this.#leases.set(lease.id, lease)
    }
    for (const r of lease.rows) {
      this.#pendingSeqs.set(r.seq, lease)
      setAdd(this.#byCustomer, lease.instance + '\u0000' + r.customer, lease)
    }
  }

  #forget (lease: PendingLease): void {
    this.#leases.delete(lease.id)
    for (const r of lease.rows) {
      this.#pendingSeqs.delete(r.seq)
      setDelete(this.#byCustomer, lease.instance + '\u0000' + r.customer, lease)
    }
  }

  async renew (leaseIds: readonly string[], expiresAt: number): Promise<string[]> {
    if (this.#db === null) throw new FST_CUSTOMER_DATA_CLOSED()
    const lost: string[] = []
    for (const id of leaseIds) {
      const lease = this.#leases.get(id)
      if (lease === undefined || lease.doomed) lost.push(id)
      if (lease !== undefined) lease.expiresAt = expiresAt
    }
    return lost
  }

  #coverSeq (instance: string, customer: string): number {
    return this.#q.coverSeq.get(instance, customer)?.cover_seq ?? 0
  }

  async dropLease (leaseId: string, erased: boolean): Promise<DeletionRef[]> {
    const lease = this.#leases.get(leaseId)
    if (lease === undefined) return []
    const refs = this.#conn.transaction((): DeletionRef[] => {
      const credit = new Map<string, DeletionRow>()
      for (const row of lease.rows) {
        if (lease.doomed) {
          const rec = this.#q.running.get(lease.instance, row.customer)
          if (rec !== undefined && row.seq <= rec.cover_seq) credit.set(rec.id, rec)
        }
        this.#q.deleteRow.run(row.seq)
      }
      for (const rec of credit.values()) {
        if (erased) this.#q.setErased.run(JSON.stringify(addCounts(JSON.parse(rec.erased), { [lease.kind]: 1 })), rec.id)
      }
      return [...credit.values()].map((rec) => ({ id: rec.id, instance: rec.instance }))
    }).immediate()
    this.#forget(lease)
    return refs
  }

  async requestDeletion (input: RequestDeletionInput): Promise<{ deletion: DeletionRecord, created: boolean }> {
    checkStoreText('the instance', input.instance)
    const { instance, customer } = input
    const result = this.#conn.transaction(() => {
      const maxSeq = this.#q.maxSeq.get(instance, customer)?.m ?? 0
      let row = this.#q.running.get(instance, customer)
      const created = row === undefined
      if (row === undefined) {
        this.#q.insertDeletion.run(input.id, instance, customer, maxSeq, input.now)
      } else if (maxSeq > row.cover_seq) {
        this.#q.extendCover.run(maxSeq, row.id) // a joined request also covers what was labeled since
      }
      row = this.#q.running.get(instance, customer) as DeletionRow
      return { deletion: toRecord(row), created }
    }).immediate()
    // Every pending lease of the customer has its rows in the table already (they are remembered
    // only once inserted), so each is covered: doomed.
    const doomed: string[] = []
    for (const lease of this.#byCustomer.get(instance + '\u0000' + customer) ?? []) {
      if (!lease.doomed) doomed.push(lease.id)
      lease.doomed = true
    }
    if (doomed.length > 0) queueMicrotask(() => this.#events.emit('doom', doomed))
    await this.#durable()
    return result
  }

  async claimBatch (deletionId: string, options: ClaimOptions): Promise<ClaimedLabel[]> {
    const rec = this.#q.byId.get(deletionId)
    if (rec === undefined || rec.status !== 'running') return []
    const out: ClaimedLabel[] = []
    for (const r of this.#q.claimable.iterate(rec.instance, rec.customer, rec.cover_seq, Number(options.after ?? 0))) {
      const lease = this.#pendingSeqs.get(r.seq)
      if (lease !== undefined && lease.expiresAt > options.now) continue // its writer is still at work
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
      this.#q.setErased.run(JSON.stringify(addCounts(JSON.parse(rec.erased), erased)), deletionId)
    }).immediate()
    for (const key of keys) {
      const seq = Number(key)
      this.#claims.delete(seq)
      // A reaped label of a writer that died: its lease loses the row (and ends with its last one).
      const lease = this.#pendingSeqs.get(seq)
      if (lease !== undefined) {
        this.#pendingSeqs.delete(seq)
        lease.rows = lease.rows.filter((r) => r.seq !== seq)
        if (lease.rows.length === 0) this.#forget(lease)
      }
    }
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
      items: items.map((r) => ({ kind: r.kind, id: r.rid, labeledAt: r.labeled_at, state: this.#state(r.seq) })),
      next: more ? String(items[items.length - 1].seq) : null
    }
  }

  #state (seq: number): LabelState {
    const lease = this.#pendingSeqs.get(seq)
    if (lease === undefined) return 'committed'
    return lease.doomed ? 'doomed' : 'pending'
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
    const c = this.#ops.covered.get(rec.instance, rec.customer, rec.cover_seq) as { remaining: number }
    // Waiting: covered labels of doomed leases whose writers are still at work (they are in memory).
    let waiting = 0
    for (const lease of this.#byCustomer.get(rec.instance + '\u0000' + rec.customer) ?? []) {
      if (lease.expiresAt <= now) continue
      for (const r of lease.rows) if (r.customer === rec.customer && r.seq <= rec.cover_seq) waiting++
    }
    return { remaining: c.remaining, waiting, attempts: rec.attempts, failures: JSON.parse(rec.failures) }
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

/** Every sqliteStore option, checked (and defaulted) in one place. */
function checkSqliteOptions (options: SqliteStoreOptions): { path: string, synchronous: 'FULL' | 'NORMAL', maxGroup: number, thread: boolean } {
  checkKnownKeys('sqliteStore', options, SQLITE_OPTIONS)
  if (typeof options.path !== 'string' || options.path.length === 0 || options.path.includes('\u0000')) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('sqliteStore needs { path: "<file>.db" }')
  }
  const synchronous = options.synchronous ?? SQLITE_DEFAULTS.synchronous
  if (synchronous !== 'FULL' && synchronous !== 'NORMAL') throw new FST_CUSTOMER_DATA_INVALID_OPTION('sqliteStore synchronous must be "FULL" or "NORMAL"')
  const maxGroup = checkInteger('sqliteStore maxGroup', options.maxGroup, { min: 1, max: MAX_GROUP }, SQLITE_DEFAULTS.maxGroup)
  const thread = checkBoolean('sqliteStore thread', options.thread, SQLITE_DEFAULTS.thread)
  return { path: options.path, synchronous, maxGroup, thread }
}

/** The embedded default: one process, durable across crashes (and power loss with synchronous FULL). */
export function sqliteStore (options: SqliteStoreOptions): LabelStore {
  // Checked here, in the caller's thread, so a bad option throws where the store is made.
  if (!checkSqliteOptions(options).thread) return new SqliteStore(options)
  const { thread: _thread, ...inThread } = options
  return new SqliteThreadStore(inThread)
}
