// A deletion as operators see it: its record and how far it has come (docs/ARCHITECTURE.md,
// Operations). Read from the store, so every replica of a fleet shows the same attempts and errors.
import { FST_CUSTOMER_DATA_STORE_UNAVAILABLE } from './errors.js'
import type { DeletionProgress, DeletionRecord, DeletionStatus, LabelStore } from './store.js'

export interface DeletionOverview extends DeletionRecord {
  progress: DeletionProgress
}

export interface DeletionOverviewPage {
  items: DeletionOverview[]
  next: string | null
}

export interface ListDeletionOverviewsOptions {
  status?: DeletionStatus
  limit: number
  cursor: string | null
}

/** One deletion with its progress, or null when the instance has none with this id. */
export async function deletionOverview (store: LabelStore, instance: string, deletionId: string, now = Date.now()): Promise<DeletionOverview | null> {
  return await unavailableOnError(async () => {
    const record = await store.getDeletion(instance, deletionId)
    if (record === null) return null
    const progress = await store.deletionProgress(instance, deletionId, now)
    return progress === null ? null : { ...record, progress }
  })
}

/** A page of the instance's deletions, newest first, each with its progress. */
export async function listDeletionOverviews (store: LabelStore, instance: string, options: ListDeletionOverviewsOptions, now = Date.now()): Promise<DeletionOverviewPage> {
  return await unavailableOnError(async () => {
    const page = await store.listDeletions(instance, options)
    const progress = await Promise.all(page.items.map((d) => store.deletionProgress(instance, d.id, now)))
    return {
      items: page.items.map((d, i) => ({ ...d, progress: progress[i] ?? { remaining: 0, waiting: 0, attempts: 0, failures: {} } })),
      next: page.next
    }
  })
}

/** A store that fails is a 503 to the caller, as for every other store call. */
async function unavailableOnError<T> (fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 503) throw err
    const wrapped = new FST_CUSTOMER_DATA_STORE_UNAVAILABLE()
    wrapped.cause = err
    throw wrapped
  }
}
