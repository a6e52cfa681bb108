// The default export: the four plugins registered with one options object, each given only the
// options it knows, so an unknown key is refused once, here, naming it.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { FST_CUSTOMER_DATA_INVALID_OPTION } from '../lib/errors.js'
import { checkBoolean, checkKnownKeys, FASTIFY_PLUGIN_KEYS } from '../lib/options.js'
import { customerDataConsole, type CustomerDataConsoleOptions } from './console.js'
import { customerLabels, LABELS_OPTION_KEYS, type CustomerLabelsOptions } from './customer-labels.js'
import { customerMetadata, METADATA_OPTION_KEYS, type CustomerMetadataOptions } from './customer-metadata.js'
import { customerDataMetrics, type CustomerDataMetricsOptions } from './metrics.js'
import { userDataRoutes } from './user-data-routes.js'
import { websocketMetadata } from './websocket-metadata.js'

export interface CustomerDataOptions extends CustomerLabelsOptions, CustomerMetadataOptions {
  /** Prefix for the user_data routes, e.g. '/instances/:instance_id'. Default none. */
  routePrefix?: string
  /** Set false to register the user_data routes yourself. Default true. */
  routes?: boolean
  /** Prometheus metrics (needs prom-client): true, or { registry, path, prefix }. Default off. */
  metrics?: boolean | CustomerDataMetricsOptions
  /** The operators' console page at { prefix }. Default off. */
  console?: CustomerDataConsoleOptions
}

const OWN_KEYS = ['routePrefix', 'routes', 'metrics', 'console'] as const

/** The options among `keys` that are set (each plugin refuses keys it does not know). */
function pick<T extends object, K extends keyof T> (options: T, keys: readonly K[]): Pick<T, K> {
  const out: Partial<T> = {}
  for (const key of keys) {
    if (options[key] !== undefined) out[key] = options[key]
  }
  return out as Pick<T, K>
}

const plugin: FastifyPluginAsync<CustomerDataOptions> = async (fastify, options) => {
  checkKnownKeys('fastify-customer-data', options, [...LABELS_OPTION_KEYS, ...METADATA_OPTION_KEYS, ...OWN_KEYS, ...FASTIFY_PLUGIN_KEYS])
  const routes = checkBoolean('routes', options.routes, true)
  if (options.routePrefix !== undefined && (typeof options.routePrefix !== 'string' || !options.routePrefix.startsWith('/'))) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('routePrefix must be a path starting with "/", e.g. "/instances/:instance_id"')
  }
  const metadata = pick(options, METADATA_OPTION_KEYS)
  await fastify.register(customerMetadata, metadata)
  await fastify.register(websocketMetadata, metadata)
  await fastify.register(customerLabels, pick(options, LABELS_OPTION_KEYS))
  if (routes) {
    await fastify.register(userDataRoutes, { ...pick(options, ['maxIdLength']), prefix: options.routePrefix })
  }
  if (options.metrics !== undefined && options.metrics !== false) {
    await fastify.register(customerDataMetrics, options.metrics === true ? {} : options.metrics)
  }
  if (options.console !== undefined) {
    await fastify.register(customerDataConsole, { maxIdLength: options.maxIdLength, ...options.console })
  }
}

export const customerData = fp(plugin, { name: 'fastify-customer-data', fastify: '5.x' })
export default customerData
