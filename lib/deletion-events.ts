// What the deletion engine tells a host as it works (docs/ARCHITECTURE.md, Operations): labels
// written, leases doomed, deletions recorded, batches erased, eraser failures, completions. Hosts
// keep their own audit trail from these; the metrics are built on them. No payload carries a
// customer ID: deletions are named by id, customers not at all.
import { EventEmitter } from 'node:events'

export interface LabelsWrittenEvent { instance: string, kind: string, /** One label per customer of the request. */ count: number }
export interface LeaseDoomedEvent { instance: string, leaseId: string }
export interface DeletionRecordedEvent {
  deletionId: string
  instance: string
  /** False when the request joined a deletion of the same customer that was still running. */
  created: boolean
  createdAt: number
}
export interface BatchErasedEvent { deletionId: string, instance: string, /** Resources erased by this batch, per kind. */ erased: Record<string, number> }
export interface EraserFailedEvent {
  deletionId: string
  instance: string
  kind: string
  /** The eraser's error message. */
  error: string
  /** Failed attempts in a row, this one included. */
  attempt: number
  nextRetryAt: number
}
export interface DeletionCompletedEvent {
  deletionId: string
  instance: string
  /** Resources erased, per kind, over the whole deletion. */
  erased: Record<string, number>
  createdAt: number
  completedAt: number
}

export interface DeletionEventMap {
  'labels-written': [LabelsWrittenEvent]
  'lease-doomed': [LeaseDoomedEvent]
  'deletion-recorded': [DeletionRecordedEvent]
  'batch-erased': [BatchErasedEvent]
  'eraser-failed': [EraserFailedEvent]
  'deletion-completed': [DeletionCompletedEvent]
}

export type DeletionEventName = keyof DeletionEventMap

export interface EventsLogger { warn(obj: object, msg?: string): void }

/** An EventEmitter whose listeners cannot break the engine: a throwing listener is logged. */
export class DeletionEvents extends EventEmitter<DeletionEventMap> {
  readonly #log: EventsLogger

  constructor (log: EventsLogger) {
    super()
    this.#log = log
    this.setMaxListeners(0)
  }

  /** on(), typed for one event at a time. */
  subscribe<E extends DeletionEventName> (name: E, listener: (...payload: DeletionEventMap[E]) => void): void {
    (this.on as (name: string, listener: (...args: any[]) => void) => this)(name, listener)
  }

  unsubscribe<E extends DeletionEventName> (name: E, listener: (...payload: DeletionEventMap[E]) => void): void {
    (this.off as (name: string, listener: (...args: any[]) => void) => this)(name, listener)
  }

  publish<E extends DeletionEventName> (name: E, ...payload: DeletionEventMap[E]): void {
    if (this.listenerCount(name) === 0) return
    try {
      (this.emit as (name: string, ...args: unknown[]) => boolean)(name, ...payload)
    } catch (err) {
      this.#log.warn({ event: name, err: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }, 'a customer data event listener threw')
    }
  }
}

/** The kind whose eraser threw each error, so a deletion can say which kind is failing. */
const failedKinds = new WeakMap<object, string>()

/** Remembers that `kind`'s eraser threw `err`; returns an object to rethrow (a non-object is wrapped). */
export function eraserFailure (kind: string, err: unknown): unknown {
  const thrown = typeof err === 'object' && err !== null ? err : new Error(String(err))
  failedKinds.set(thrown, kind)
  return thrown
}

/** The kind whose eraser threw `err`, or null when an eraser did not throw it. */
export function failedKind (err: unknown): string | null {
  return typeof err === 'object' && err !== null ? failedKinds.get(err) ?? null : null
}

/** The message of a thrown value, for operators: never its stack. */
export function failureMessage (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
