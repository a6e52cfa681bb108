// Prometheus metrics of labels and deletions on the host's registry (docs/ARCHITECTURE.md,
// Operations). prom-client is an optional peer dependency: it is imported only when this plugin is
// registered, so hosts without metrics do not need it.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { FST_CUSTOMER_DATA_INVALID_OPTION } from '../lib/errors.js'
import { DEFAULT_METRICS_PREFIX, deletionMetrics } from '../lib/metrics.js'

/**
 * The part of a prom-client `Registry` this plugin uses. Described, not imported, so the published
 * types compile in a host without prom-client.
 */
export interface MetricsRegistry {
  readonly contentType: string
  metrics(): Promise<string>
  getSingleMetric(name: string): unknown
  removeSingleMetric(name: string): void
  registerMetric(metric: never): void
}

export interface CustomerDataMetricsOptions {
  /**
   * The prom-client registry to add the metrics to. Default: prom-client's global `register`, the
   * one fastify-metrics and most hosts already expose.
   */
  registry?: MetricsRegistry
  /** Serve the registry at this path (e.g. '/metrics'). Default: no route (the host serves it). */
  path?: string
  /** Metric name prefix. Default 'customer_data_'. */
  prefix?: string
}

const METRIC_PREFIX = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/

async function loadPromClient (): Promise<typeof import('prom-client')> {
  try {
    return await import('prom-client')
  } catch {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('metrics need the prom-client package: npm install prom-client')
  }
}

const plugin: FastifyPluginAsync<CustomerDataMetricsOptions> = async (fastify, options) => {
  const prefix = options.prefix ?? DEFAULT_METRICS_PREFIX
  if (typeof prefix !== 'string' || !METRIC_PREFIX.test(prefix)) throw new FST_CUSTOMER_DATA_INVALID_OPTION('metrics prefix must match [a-zA-Z_:][a-zA-Z0-9_:]*')
  if (options.path !== undefined && (typeof options.path !== 'string' || !options.path.startsWith('/'))) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('metrics path must start with "/", e.g. "/metrics"')
  }
  const prom = await loadPromClient()
  const registry = (options.registry ?? prom.register) as import('prom-client').Registry
  if (registry === null || typeof registry !== 'object' || typeof registry.metrics !== 'function') {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('metrics registry must be a prom-client Registry')
  }
  const metrics = deletionMetrics(prom, registry, fastify.customerData.engine, prefix)
  fastify.addHook('onClose', async () => { metrics.close() })

  if (options.path !== undefined) {
    fastify.get(options.path, { logLevel: 'warn' }, async function scrapeMetrics (request, reply) {
      return reply.type(registry.contentType).send(await registry.metrics())
    })
  }
}

export const customerDataMetrics = fp(plugin, {
  name: 'fastify-customer-data/metrics',
  fastify: '5.x',
  dependencies: ['fastify-customer-data/customer-labels']
})
export default customerDataMetrics
