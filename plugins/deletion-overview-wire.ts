// A deletion with its progress on the wire: the list route, the status route and the console
// share it (docs/ARCHITECTURE.md, Operations). It carries no customer ID.
import { Type } from '@fastify/type-provider-typebox'
import type { DeletionOverview, DeletionOverviewPage } from '../lib/deletion-overview.js'

const Iso = Type.String({ format: 'date-time' })

export const DeletionOverviewSchema = Type.Object({
  deletion_id: Type.String(),
  status: Type.Union([Type.Literal('running'), Type.Literal('completed')]),
  erased: Type.Record(Type.String(), Type.Integer(), { description: 'resources erased so far, per kind' }),
  created_at: Iso,
  completed_at: Type.Union([Iso, Type.Null()]),
  progress: Type.Object({
    remaining_labels: Type.Integer({ description: 'labels the deletion still has to erase' }),
    waiting_on_writers: Type.Integer({ description: 'of those, labels whose writer is still storing (its lease is live)' }),
    attempts: Type.Integer({ description: 'failed attempts since the deletion last made progress' }),
    failures: Type.Record(Type.String(), Type.Object({
      error: Type.String({ description: "the eraser's last error message" }),
      failed_at: Iso,
      next_retry_at: Iso
    }), { description: 'per kind whose eraser is failing' })
  })
})

export const DeletionListSchema = Type.Object({
  deletions: Type.Array(DeletionOverviewSchema),
  next_cursor: Type.Union([Type.String(), Type.Null()])
})

/** How many deletions one list page holds at most. */
export const MAX_LIST_LIMIT = 100
export const DEFAULT_LIST_LIMIT = 20

export const DeletionListQuery = Type.Object({
  status: Type.Optional(Type.Union([Type.Literal('running'), Type.Literal('completed')])),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_LIST_LIMIT, default: DEFAULT_LIST_LIMIT })),
  cursor: Type.Optional(Type.String({ maxLength: 200, pattern: '^[0-9]{1,16}_\\S{1,128}$', description: 'next_cursor of the previous page' }))
})

function iso (ms: number): string {
  return new Date(ms).toISOString()
}

export function deletionOverviewBody (d: DeletionOverview): Record<string, unknown> {
  const failures: Record<string, { error: string, failed_at: string, next_retry_at: string }> = {}
  for (const [kind, f] of Object.entries(d.progress.failures)) {
    failures[kind] = { error: f.error, failed_at: iso(f.failedAt), next_retry_at: iso(f.nextRetryAt) }
  }
  return {
    deletion_id: d.id,
    status: d.status,
    erased: d.erased,
    created_at: iso(d.createdAt),
    completed_at: d.completedAt === null ? null : iso(d.completedAt),
    progress: {
      remaining_labels: d.progress.remaining,
      waiting_on_writers: d.progress.waiting,
      attempts: d.progress.attempts,
      failures
    }
  }
}

export function deletionListBody (page: DeletionOverviewPage): { deletions: Array<Record<string, unknown>>, next_cursor: string | null } {
  return { deletions: page.items.map(deletionOverviewBody), next_cursor: page.next }
}
