// The label store interface (docs/ARCHITECTURE.md, "Deletion", "Stores"). Every step the deletion protocol needs to be atomic
// is one call, so an adapter can make it one transaction (SQLite) or one statement batch under row
// locks (PostgreSQL). Customer IDs reach a store only as HMAC digests (lib/digest.ts).
import { FST_CUSTOMER_DATA_BAD_REQUEST, FST_CUSTOMER_DATA_INVALID_RESOURCE } from './errors.js'

export type LabelState = 'pending' | 'committed' | 'doomed'

/** One write-ahead label request: the same resource labeled for each customer digest. */
export interface LabelInput {
  leaseId: string
  instance: string
  customers: readonly string[]
  kind: string
  id: string
  /** Epoch milliseconds. */
  now: number
  /** When the lease expires unless renewed (epoch ms). */
  expiresAt: number
}

export interface WithdrawInput {
  instance: string
  kind: string
  ids: readonly string[]
  /** A lease whose labels stay. */
  exceptLease?: string
}

export type CommitResult =
  | { status: 'committed' }
  /** A deletion doomed the lease: the writer must erase `resources`, then call dropLease. */
  | { status: 'doomed', resources: Array<{ kind: string, id: string }> }
  /** The lease's labels are gone: it was doomed and reaped after it expired. The writer must erase. */
  | { status: 'gone' }

export type DeletionStatus = 'running' | 'completed'

export interface DeletionRecord {
  id: string
  instance: string
  /** HMAC digest of the customer ID, never the ID itself. */
  customer: string
  status: DeletionStatus
  /** Resources erased so far, per kind. */
  erased: Record<string, number>
  createdAt: number
  completedAt: number | null
}

export interface DeletionRef {
  id: string
  instance: string
}

export interface ClaimedLabel {
  /** Store-specific row key, passed back to completeBatch. */
  key: string
  kind: string
  id: string
}

export interface ExportedLabel {
  kind: string
  id: string
  labeledAt: number
  state: LabelState
}

export interface ExportPage {
  items: ExportedLabel[]
  /** Opaque cursor for the next page, or null on the last page. */
  next: string | null
}

export interface RequestDeletionInput {
  /** The id a new deletion gets; ignored when an unfinished one is joined. */
  id: string
  instance: string
  customer: string
  now: number
}

export interface ClaimOptions {
  /** Identifies the worker; its own unexpired claims are returned to it again (retries). */
  owner: string
  limit: number
  now: number
  claimUntil: number
  /**
   * The key of the last label this worker claimed in its current pass, or null to start from the
   * beginning. Stores that order by key can skip what lies before it (PostgreSQL: dead index
   * entries of erased labels); a store may ignore it.
   */
  after?: string | null
}

export interface LabelStore {
  /** Creates or migrates the schema. Called once before any other method. */
  open(): Promise<void>
  close(): Promise<void>
  /** The installation secret that keys customer digests; created and persisted on first call. */
  secret(): Promise<Buffer>

  /** Durably records pending labels (write-ahead). Resolves only when they survive a crash. */
  label(labels: readonly LabelInput[]): Promise<void>
  /** Extends the leases; returns those of them that are doomed or gone. */
  renew(leaseIds: readonly string[], expiresAt: number): Promise<string[]>
  /**
   * Ends a lease: its labels become committed unless a deletion doomed it. With `replace`, in the
   * same transaction, the other committed labels of the lease's resources are withdrawn: a
   * resource replaced by a new write belongs only to the new writer's customers.
   */
  commit(leaseId: string, now: number, replace?: boolean): Promise<CommitResult>
  /**
   * Removes the committed labels (of every customer) of these resources in this instance, except
   * those of `exceptLease`: the host deleted or replaced the resources itself, so no later
   * deletion may erase a new resource that reuses the name. Pending and doomed labels stay (their
   * writers are still at work). A withdrawn label a running deletion covers simply drops out of
   * it. Returns how many labels were removed.
   */
  withdraw(input: WithdrawInput): Promise<number>
  /**
   * Removes every label of the lease. With `erased`, its doomed labels count as erased in the
   * deletions that doomed them. Returns those deletions, so they can be driven to completion.
   */
  dropLease(leaseId: string, erased: boolean): Promise<DeletionRef[]>

  /**
   * In one transaction: join the unfinished deletion of (instance, customer) or record a new one,
   * cover every uncovered label of (instance, customer), doom the pending ones, and notify every
   * process holding a doomed lease (onDoom).
   */
  requestDeletion(input: RequestDeletionInput): Promise<{ deletion: DeletionRecord, created: boolean }>
  /**
   * Claims up to `limit` covered labels that are ready to erase: committed ones, and doomed ones
   * whose lease expired. Labels claimed by another live worker are skipped.
   */
  claimBatch(deletionId: string, options: ClaimOptions): Promise<ClaimedLabel[]>
  /**
   * Atomically removes the batch's labels and adds `erased` to the deletion's counts. Keys whose
   * labels vanished meanwhile (withdrawn) are no error.
   */
  completeBatch(deletionId: string, keys: readonly string[], erased: Record<string, number>): Promise<void>
  /**
   * Optional: the erasers of a claimed batch failed. A store whose batch is an open transaction
   * (PostgreSQL) rolls it back so the labels can be claimed again; others let the claim expire.
   */
  abandonBatch?(deletionId: string, keys: readonly string[]): Promise<void>
  /** Marks the deletion completed if no covered label remains; returns its record. */
  finishDeletion(deletionId: string, now: number): Promise<DeletionRecord | null>
  getDeletion(instance: string, deletionId: string): Promise<DeletionRecord | null>
  /** Unfinished deletions, oldest first. */
  runningDeletions(limit: number): Promise<DeletionRef[]>

  /** The uncovered labels of (instance, customer), oldest first, one page. */
  exportLabels(instance: string, customer: string, limit: number, cursor: string | null): Promise<ExportPage>

  /** Subscribes to doom notices: the lease ids a deletion doomed, from any process sharing the store. */
  onDoom(listener: (leaseIds: string[]) => void): () => void
  /** Optional: scrub freed space after a deletion completes (SQLite: WAL checkpoint). */
  compact?(): Promise<void>

  // --- Operations: what operators see of deletions (the list route, the console, metrics). ---
  /** The instance's deletions, newest first, one page; `status` filters. */
  listDeletions(instance: string, options: ListDeletionsOptions): Promise<DeletionPage>
  /** How far the deletion has come, or null if the instance has no such deletion. */
  deletionProgress(instance: string, deletionId: string, now: number): Promise<DeletionProgress | null>
  /**
   * Records a failed erase attempt of a running deletion (attempts + 1, the kind's last error and
   * next retry), or, with null, that it made progress again (attempts 0, no failures).
   */
  noteDeletionAttempt(deletionId: string, failure: DeletionFailureInput | null): Promise<void>
  /** Every instance's unfinished deletions: how many, and when the oldest was recorded. */
  runningSummary(): Promise<RunningSummary>
}

export interface ListDeletionsOptions {
  status?: DeletionStatus
  limit: number
  /** Opaque cursor from the previous page, or null for the newest. */
  cursor: string | null
}

export interface DeletionPage {
  items: DeletionRecord[]
  next: string | null
}

/** The last failure of one kind's eraser within a deletion. */
export interface KindFailure {
  /** The eraser's error message (it never sees a customer ID). */
  error: string
  failedAt: number
  nextRetryAt: number
}

export interface DeletionFailureInput extends KindFailure {
  /** The kind whose eraser failed; null when the failure was not an eraser's (e.g. the store's). */
  kind: string | null
}

export interface DeletionProgress {
  /** Labels the deletion still covers (0 once completed). */
  remaining: number
  /** Of those, labels doomed while their writer's lease is still live: they wait for it. */
  waiting: number
  /** Failed attempts since the deletion last made progress. */
  attempts: number
  /** Per kind whose eraser is failing: its last error and the next retry. */
  failures: Record<string, KindFailure>
}

export interface RunningSummary {
  running: number
  /** When the oldest unfinished deletion was recorded (epoch ms), or null when none is. */
  oldestCreatedAt: number | null
}

/** Deletion list cursors are "<createdAt>_<id>": newest first, ties broken by id. */
export function deletionCursor (d: { createdAt: number, id: string }): string {
  return `${d.createdAt}_${d.id}`
}

export function parseDeletionCursor (cursor: string): { createdAt: number, id: string } {
  const sep = cursor.indexOf('_')
  return { createdAt: Number(cursor.slice(0, sep)), id: cursor.slice(sep + 1) }
}

/** Longest eraser error message kept with a deletion. */
export const MAX_FAILURE_MESSAGE = 500

/** Applies a failure (or a recovery) to a deletion's attempt count and failures. */
export function applyDeletionAttempt (
  current: { attempts: number, failures: Record<string, KindFailure> },
  failure: DeletionFailureInput | null
): { attempts: number, failures: Record<string, KindFailure> } {
  if (failure === null) return { attempts: 0, failures: {} }
  const failures = { ...current.failures }
  if (failure.kind !== null) {
    failures[failure.kind] = { error: failure.error.slice(0, MAX_FAILURE_MESSAGE), failedAt: failure.failedAt, nextRetryAt: failure.nextRetryAt }
  }
  return { attempts: current.attempts + 1, failures }
}

/** Adds counts per kind into `into`. */
export function addCounts (into: Record<string, number>, add: Record<string, number>): Record<string, number> {
  for (const [kind, n] of Object.entries(add)) into[kind] = (into[kind] ?? 0) + n
  return into
}

/** The distinct (kind, id) pairs among `resources`, in first-seen order. */
export function distinctResources (resources: Iterable<{ kind: string, id: string }>): Array<{ kind: string, id: string }> {
  const seen = new Map<string, { kind: string, id: string }>()
  for (const r of resources) {
    const key = r.kind + '\u0000' + r.id
    if (!seen.has(key)) seen.set(key, { kind: r.kind, id: r.id })
  }
  return [...seen.values()]
}

/** How many of `resources` are of each kind. */
export function countByKind (resources: Iterable<{ kind: string }>): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const r of resources) counts[r.kind] = (counts[r.kind] ?? 0) + 1
  return counts
}

/**
 * Every store refuses the same inputs before any SQL: PostgreSQL text cannot hold U+0000, and an
 * unchecked value would surface as a driver error (a 500 or 503) instead of the caller's mistake.
 */
export function checkStoreText (what: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.includes('\u0000')) {
    throw new FST_CUSTOMER_DATA_INVALID_RESOURCE(`${what} must be a string without NUL (U+0000) characters`)
  }
}

/** The largest seq a store hands out in a cursor: PostgreSQL's bigint. */
const MAX_SEQ = 2n ** 63n - 1n

/**
 * The export cursor as a seq (0 for the first page). Cursors are decimal seqs; anything else, or
 * a number no store could have issued, is the client's mistake (400), not a store failure.
 */
export function parseSeqCursor (cursor: string | null): bigint {
  if (cursor === null) return 0n
  if (typeof cursor !== 'string' || !/^[0-9]{1,20}$/.test(cursor) || BigInt(cursor) > MAX_SEQ) {
    throw new FST_CUSTOMER_DATA_BAD_REQUEST('Invalid cursor: pass the next_cursor of the previous page unchanged.')
  }
  return BigInt(cursor)
}

/** A deletion id any store could have issued (a UUID, or a test's plain id): no NUL, bounded. */
export function isDeletionId (id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= 256 && !id.includes('\u0000')
}

/** The checks every store makes on a label before it writes anything. */
export function checkLabel (l: LabelInput): void {
  checkStoreText('the lease id', l.leaseId)
  checkStoreText('the instance', l.instance)
  checkStoreText('the kind', l.kind)
  checkStoreText('the resource id', l.id)
  for (const c of l.customers) checkStoreText('the customer digest', c)
}

/** The checks every store makes on a withdraw request. */
export function checkWithdraw (input: WithdrawInput): void {
  checkStoreText('the instance', input.instance)
  checkStoreText('the kind', input.kind)
  if (!Array.isArray(input.ids)) throw new FST_CUSTOMER_DATA_INVALID_RESOURCE('ids must be an array of resource ids')
  for (const id of input.ids) checkStoreText('the resource id', id)
  if (input.exceptLease !== undefined) checkStoreText('the lease id', input.exceptLease)
}
