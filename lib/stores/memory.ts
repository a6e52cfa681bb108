// An in-process label store for tests and development. NOT durable: a crash or restart loses
// every label and deletion record (docs/ARCHITECTURE.md, "Invariants": Durable excepts it). Every method runs to the end
// synchronously, so each is atomic.
import { randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { FST_CUSTOMER_DATA_CLOSED, FST_CUSTOMER_DATA_INVALID_OPTION } from '../errors.js'
import { checkKnownKeys } from '../options.js'
import { setAdd, setDelete } from './multimap.js'
import {
  addCounts, checkLabel, checkStoreText, checkWithdraw, countByKind, distinctResources, isDeletionId, parseSeqCursor,
  type ClaimedLabel, type ClaimOptions, type DeletionRef, type CommitResult, type DeletionRecord, type ExportPage,
  type LabelInput, type LabelState, type LabelStore, type RequestDeletionInput, type WithdrawInput
} from '../store.js'
import {
  applyDeletionAttempt, deletionCursor, parseDeletionCursor,
  type DeletionFailureInput, type DeletionPage, type DeletionProgress, type KindFailure, type ListDeletionsOptions, type RunningSummary
} from '../store.js'

interface Row {
  seq: number
  instance: string
  customer: string
  kind: string
  id: string
  state: LabelState
  leaseId: string | null
  leaseExpires: number
  labeledAt: number
  deletionId: string | null
  claimOwner: string | null
  claimUntil: number
}

export interface MemoryStoreOptions {
  /** Fixed installation secret; a random one per store otherwise. */
  secret?: Buffer
}

const sep = '\u0000'

export class MemoryStore implements LabelStore {
  #rows = new Map<number, Row>()
  #seq = 0
  #byLease = new Map<string, Set<number>>()
  #uncovered = new Map<string, Set<number>>() // instance+customer → uncovered rows, seq order
  #byDeletion = new Map<string, Set<number>>()
  #byResource = new Map<string, Set<number>>() // instance+kind+id → rows, for withdraw
  #deletions = new Map<string, DeletionRecord>()
  #running = new Map<string, string>() // instance+customer → unfinished deletion id
  #events = new EventEmitter()
  #secret: Buffer
  #closed = false

  constructor (options: MemoryStoreOptions = {}) {
    checkKnownKeys('memoryStore', options, ['secret'])
    if (options.secret !== undefined && (!Buffer.isBuffer(options.secret) || options.secret.length < 16)) {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION('memoryStore secret must be a Buffer of at least 16 bytes')
    }
    this.#secret = options.secret ?? randomBytes(32)
    this.#events.setMaxListeners(0)
  }

  #check (): void {
    if (this.#closed) throw new FST_CUSTOMER_DATA_CLOSED()
  }

  async open (): Promise<void> { this.#closed = false }
  async close (): Promise<void> { this.#closed = true; this.#events.removeAllListeners() }
  async secret (): Promise<Buffer> { return this.#secret }

  async label (labels: readonly LabelInput[]): Promise<void> {
    this.#check()
    for (const l of labels) checkLabel(l)
    for (const l of labels) {
      for (const customer of l.customers) {
        const row: Row = {
          seq: ++this.#seq,
          instance: l.instance,
          customer,
          kind: l.kind,
          id: l.id,
          state: 'pending',
          leaseId: l.leaseId,
          leaseExpires: l.expiresAt,
          labeledAt: l.now,
          deletionId: null,
          claimOwner: null,
          claimUntil: 0
        }
        this.#rows.set(row.seq, row)
        setAdd(this.#byLease, l.leaseId, row.seq)
        setAdd(this.#uncovered, l.instance + sep + customer, row.seq)
        setAdd(this.#byResource, resourceKey(l.instance, l.kind, l.id), row.seq)
      }
    }
  }

  async renew (leaseIds: readonly string[], expiresAt: number): Promise<string[]> {
    this.#check()
    const lost: string[] = []
    for (const leaseId of leaseIds) {
      const seqs = this.#byLease.get(leaseId)
      if (seqs === undefined) { lost.push(leaseId); continue }
      let doomed = false
      for (const seq of seqs) {
        const row = this.#rows.get(seq) as Row
        row.leaseExpires = expiresAt
        if (row.state === 'doomed') doomed = true
      }
      if (doomed) lost.push(leaseId)
    }
    return lost
  }

  async commit (leaseId: string, now: number, replace = false): Promise<CommitResult> {
    this.#check()
    const seqs = this.#byLease.get(leaseId)
    if (seqs === undefined) return { status: 'gone' }
    const rows = [...seqs].map((seq) => this.#rows.get(seq) as Row)
    if (rows.some((r) => r.state === 'doomed')) return { status: 'doomed', resources: distinctResources(rows) }
    if (replace) {
      for (const r of distinctResources(rows)) this.#withdrawNow(rows[0].instance, r.kind, [r.id], leaseId)
    }
    for (const row of rows) {
      row.leaseId = null
      row.state = 'committed'
    }
    this.#byLease.delete(leaseId)
    return { status: 'committed' }
  }

  async dropLease (leaseId: string, erased: boolean): Promise<DeletionRef[]> {
    this.#check()
    const seqs = this.#byLease.get(leaseId)
    if (seqs === undefined) return []
    const rows = [...seqs].map((seq) => this.#rows.get(seq) as Row)
    const credited = new Map<string, Row[]>()
    for (const row of rows) {
      if (row.deletionId !== null) credited.set(row.deletionId, [...(credited.get(row.deletionId) ?? []), row])
      this.#remove(row)
    }
    const refs: DeletionRef[] = []
    for (const [deletionId, covered] of credited) {
      const rec = this.#deletions.get(deletionId)
      if (rec === undefined) continue
      if (erased) addCounts(rec.erased, countByKind(distinctResources(covered)))
      refs.push({ id: deletionId, instance: rec.instance })
    }
    return refs
  }

  async withdraw (input: WithdrawInput): Promise<number> {
    this.#check()
    checkWithdraw(input)
    return this.#withdrawNow(input.instance, input.kind, input.ids, input.exceptLease)
  }

  #withdrawNow (instance: string, kind: string, ids: readonly string[], exceptLease?: string): number {
    let removed = 0
    for (const id of ids) {
      for (const seq of [...this.#byResource.get(resourceKey(instance, kind, id)) ?? []]) {
        const row = this.#rows.get(seq) as Row
        if (row.state !== 'committed' || (exceptLease !== undefined && row.leaseId === exceptLease)) continue
        this.#remove(row)
        removed++
      }
    }
    return removed
  }

  async requestDeletion (input: RequestDeletionInput): Promise<{ deletion: DeletionRecord, created: boolean }> {
    checkStoreText('the instance', input.instance)
    this.#check()
    const ck = input.instance + sep + input.customer
    let created = false
    let deletion = this.#deletions.get(this.#running.get(ck) ?? '')
    if (deletion === undefined) {
      created = true
      deletion = {
        id: input.id,
        instance: input.instance,
        customer: input.customer,
        status: 'running',
        erased: {},
        createdAt: input.now,
        completedAt: null
      }
      this.#deletions.set(deletion.id, deletion)
      this.#running.set(ck, deletion.id)
    }
    const doomed = new Set<string>()
    const seqs = this.#uncovered.get(ck)
    if (seqs !== undefined) {
      for (const seq of seqs) {
        const row = this.#rows.get(seq) as Row
        row.deletionId = deletion.id
        setAdd(this.#byDeletion, deletion.id, seq)
        if (row.state === 'pending') {
          row.state = 'doomed'
          doomed.add(row.leaseId as string)
        }
      }
      this.#uncovered.delete(ck)
    }
    if (doomed.size > 0) {
      const leaseIds = [...doomed]
      queueMicrotask(() => this.#events.emit('doom', leaseIds))
    }
    return { deletion: copyDeletion(deletion), created }
  }

  async claimBatch (deletionId: string, options: ClaimOptions): Promise<ClaimedLabel[]> {
    this.#check()
    const out: ClaimedLabel[] = []
    for (const seq of this.#byDeletion.get(deletionId) ?? []) {
      if (out.length >= options.limit) break
      const row = this.#rows.get(seq) as Row
      if (row.state === 'doomed' && row.leaseExpires > options.now) continue
      if (row.claimOwner !== null && row.claimOwner !== options.owner && row.claimUntil > options.now) continue
      row.claimOwner = options.owner
      row.claimUntil = options.claimUntil
      out.push({ key: String(seq), kind: row.kind, id: row.id })
    }
    return out
  }

  async completeBatch (deletionId: string, keys: readonly string[], erased: Record<string, number>): Promise<void> {
    this.#check()
    for (const key of keys) {
      const row = this.#rows.get(Number(key))
      if (row !== undefined && row.deletionId === deletionId) this.#remove(row)
    }
    const rec = this.#deletions.get(deletionId)
    if (rec !== undefined) addCounts(rec.erased, erased)
  }

  async finishDeletion (deletionId: string, now: number): Promise<DeletionRecord | null> {
    this.#check()
    const rec = this.#deletions.get(deletionId)
    if (rec === undefined) return null
    if (rec.status === 'running' && (this.#byDeletion.get(deletionId)?.size ?? 0) === 0) {
      rec.status = 'completed'
      rec.completedAt = now
      this.#byDeletion.delete(deletionId)
      this.#running.delete(rec.instance + sep + rec.customer)
    }
    return copyDeletion(rec)
  }

  async getDeletion (instance: string, deletionId: string): Promise<DeletionRecord | null> {
    this.#check()
    if (!isDeletionId(deletionId) || instance.includes('\u0000')) return null
    const rec = this.#deletions.get(deletionId)
    return rec !== undefined && rec.instance === instance ? copyDeletion(rec) : null
  }

  async runningDeletions (limit: number): Promise<DeletionRef[]> {
    this.#check()
    const out = []
    for (const id of this.#running.values()) {
      if (out.length === limit) break
      out.push({ id, instance: (this.#deletions.get(id) as DeletionRecord).instance })
    }
    return out
  }

  async exportLabels (instance: string, customer: string, limit: number, cursor: string | null): Promise<ExportPage> {
    checkStoreText('the instance', instance)
    this.#check()
    const after = Number(parseSeqCursor(cursor))
    const items = []
    let last = 0
    let more = false
    for (const seq of this.#uncovered.get(instance + sep + customer) ?? []) {
      if (seq <= after) continue
      if (items.length === limit) { more = true; break }
      const row = this.#rows.get(seq) as Row
      items.push({ kind: row.kind, id: row.id, labeledAt: row.labeledAt, state: row.state })
      last = seq
    }
    return { items, next: more ? String(last) : null }
  }

  onDoom (listener: (leaseIds: string[]) => void): () => void {
    this.#events.on('doom', listener)
    return () => { this.#events.off('doom', listener) }
  }

  #remove (row: Row): void {
    this.#rows.delete(row.seq)
    if (row.leaseId !== null) setDelete(this.#byLease, row.leaseId, row.seq)
    setDelete(this.#byResource, resourceKey(row.instance, row.kind, row.id), row.seq)
    const ck = row.instance + sep + row.customer
    if (row.deletionId !== null) {
      setDelete(this.#byDeletion, row.deletionId, row.seq)
    } else {
      setDelete(this.#uncovered, ck, row.seq)
    }
  }

  // --- Operations (lib/store.ts): the deletion list, progress and the running summary. ---
  /** Attempts and failures per deletion id, kept beside the records. */
  #attempts = new Map<string, { attempts: number, failures: Record<string, KindFailure> }>()

  /** A scan of every record: this store is for tests and development, not for large tables. */
  async listDeletions (instance: string, options: ListDeletionsOptions): Promise<DeletionPage> {
    this.#check()
    const after = options.cursor === null ? null : parseDeletionCursor(options.cursor)
    const mine = [...this.#deletions.values()]
      .filter((d) => d.instance === instance && (options.status === undefined || d.status === options.status))
      .filter((d) => after === null || d.createdAt < after.createdAt || (d.createdAt === after.createdAt && d.id < after.id))
      .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0))
    const items = mine.slice(0, options.limit).map(copyDeletion)
    return { items, next: mine.length > options.limit ? deletionCursor(items[items.length - 1]) : null }
  }

  async deletionProgress (instance: string, deletionId: string, now: number): Promise<DeletionProgress | null> {
    this.#check()
    const rec = this.#deletions.get(deletionId)
    if (rec === undefined || rec.instance !== instance) return null
    let remaining = 0
    let waiting = 0
    for (const seq of this.#byDeletion.get(deletionId) ?? []) {
      const row = this.#rows.get(seq) as Row
      remaining++
      if (row.state === 'doomed' && row.leaseExpires > now) waiting++
    }
    // A completed deletion has nothing left to retry.
    const a = (rec.status === 'running' ? this.#attempts.get(deletionId) : undefined) ?? { attempts: 0, failures: {} }
    return { remaining, waiting, attempts: a.attempts, failures: { ...a.failures } }
  }

  async noteDeletionAttempt (deletionId: string, failure: DeletionFailureInput | null): Promise<void> {
    this.#check()
    if (this.#deletions.get(deletionId)?.status !== 'running') return
    this.#attempts.set(deletionId, applyDeletionAttempt(this.#attempts.get(deletionId) ?? { attempts: 0, failures: {} }, failure))
  }

  async runningSummary (): Promise<RunningSummary> {
    this.#check()
    let oldest: number | null = null
    for (const id of this.#running.values()) {
      const createdAt = (this.#deletions.get(id) as DeletionRecord).createdAt
      if (oldest === null || createdAt < oldest) oldest = createdAt
    }
    return { running: this.#running.size, oldestCreatedAt: oldest }
  }
}

function resourceKey (instance: string, kind: string, id: string): string {
  return instance + sep + kind + sep + id
}

function copyDeletion (d: DeletionRecord): DeletionRecord {
  return { ...d, erased: { ...d.erased } }
}

/** The in-memory store: for tests and development only, it keeps nothing across a restart. */
export function memoryStore (options?: MemoryStoreOptions): LabelStore {
  return new MemoryStore(options)
}
