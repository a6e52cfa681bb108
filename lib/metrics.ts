// Prometheus metrics of labels and deletions (docs/ARCHITECTURE.md, Operations), built on the
// engine's events and the store's running summary. prom-client is passed in, so it loads only when
// a host asks for metrics. No metric has a customer ID or an instance as a label.
import type * as PromClient from 'prom-client'
import type { CustomerDataEngine } from './engine.js'
import type { DeletionEventMap, DeletionEventName } from './deletion-events.js'
import { FST_CUSTOMER_DATA_INVALID_OPTION } from './errors.js'
import type { RunningSummary } from './store.js'

export const DEFAULT_METRICS_PREFIX = 'customer_data_'

/** Seconds: a deletion takes from milliseconds (nothing to erase) to hours (an eraser down for a while). */
const DURATION_BUCKETS = [0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600]

export interface DeletionMetrics {
  /** deletions_running and oldest_running_deletion_age_seconds, read from the store at each scrape. */
  gauges: PromClient.Gauge[]
  /** Unsubscribes from the engine and removes the metrics from the registry. */
  close(): void
}

export function deletionMetrics (prom: Pick<typeof PromClient, 'Counter' | 'Gauge' | 'Histogram'>, registry: PromClient.Registry, engine: CustomerDataEngine, prefix = DEFAULT_METRICS_PREFIX): DeletionMetrics {
  const registers = [registry]
  const names: string[] = []
  function named (name: string): string {
    const full = prefix + name
    if (registry.getSingleMetric(full) !== undefined) {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION(`metrics: the registry already has a metric ${full}; give each app its own registry or metrics prefix`)
    }
    names.push(full)
    return full
  }

  // The two gauges collect at once during a scrape: they share one store query.
  let summary: Promise<RunningSummary> | null = null
  function runningSummary (): Promise<RunningSummary> {
    summary ??= engine.store.runningSummary().finally(() => { summary = null })
    return summary
  }

  const labelsWritten = new prom.Counter({ name: named('labels_written_total'), help: 'Labels written ahead of customer data, per resource kind (one per customer of the request).', labelNames: ['kind'], registers })
  const leasesDoomed = new prom.Counter({ name: named('leases_doomed_total'), help: 'Leases of writers in this process doomed by a deletion while they were storing.', registers })
  const deletions = new prom.Counter({ name: named('deletions_total'), help: 'Deletion requests by outcome: recorded (new), joined (one was running), completed.', labelNames: ['outcome'], registers })
  const erased = new prom.Counter({ name: named('resources_erased_total'), help: 'Resources erased by deletion batches, per kind.', labelNames: ['kind'], registers })
  const failures = new prom.Counter({ name: named('eraser_failures_total'), help: 'Failed eraser calls of deletion batches, per kind (each is retried).', labelNames: ['kind'], registers })
  const duration = new prom.Histogram({ name: named('deletion_duration_seconds'), help: 'Time from recording a deletion to its completion.', buckets: DURATION_BUCKETS, registers })
  // The gauges read the store, so every replica of a fleet reports the fleet's value.
  const gauges = [new prom.Gauge({
    name: named('deletions_running'),
    help: 'Unfinished deletions in the store (every instance; the same on every replica).',
    registers,
    async collect () { this.set((await runningSummary()).running) }
  }), new prom.Gauge({
    name: named('oldest_running_deletion_age_seconds'),
    help: 'Age of the oldest unfinished deletion; 0 when none is running. Alert when it grows.',
    registers,
    async collect () {
      const { oldestCreatedAt } = await runningSummary()
      this.set(oldestCreatedAt === null ? 0 : Math.max(0, (Date.now() - oldestCreatedAt) / 1000))
    }
  })]
  for (const outcome of ['recorded', 'joined', 'completed']) deletions.inc({ outcome }, 0)
  leasesDoomed.inc(0)

  const listeners: { [E in DeletionEventName]: (...payload: DeletionEventMap[E]) => void } = {
    'labels-written': (e) => { labelsWritten.inc({ kind: e.kind }, e.count) },
    'lease-doomed': () => { leasesDoomed.inc() },
    'deletion-recorded': (e) => { deletions.inc({ outcome: e.created ? 'recorded' : 'joined' }) },
    'batch-erased': (e) => { for (const [kind, n] of Object.entries(e.erased)) erased.inc({ kind }, n) },
    'eraser-failed': (e) => { failures.inc({ kind: e.kind }) },
    'deletion-completed': (e) => {
      deletions.inc({ outcome: 'completed' })
      duration.observe(Math.max(0, (e.completedAt - e.createdAt) / 1000))
    }
  }
  const entries = Object.entries(listeners) as Array<[DeletionEventName, (...args: any[]) => void]>
  for (const [name, fn] of entries) engine.events.subscribe(name, fn)

  return {
    gauges,
    close () {
      for (const [name, fn] of entries) engine.events.unsubscribe(name, fn)
      for (const name of names) registry.removeSingleMetric(name)
    }
  }
}
