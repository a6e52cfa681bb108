// The default export: the four plugins registered with one options object.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { customerLabels, type CustomerLabelsOptions } from './customer-labels.js'
import { customerMetadata } from './customer-metadata.js'
import { customerDataMetrics, type CustomerDataMetricsOptions } from './metrics.js'
import { customerDataConsole, type CustomerDataConsoleOptions } from './console.js'
import { userDataRoutes } from './user-data-routes.js'
import { websocketMetadata, type WebsocketMetadataOptions } from './websocket-metadata.js'

export interface CustomerDataOptions extends CustomerLabelsOptions, WebsocketMetadataOptions {
  /** Prefix for the user_data routes, e.g. '/instances/:instance_id'. Default none. */
  routePrefix?: string
  /** Set false to register the user_data routes yourself. Default true. */
  routes?: boolean
  /** Prometheus metrics (needs prom-client): true, or { registry, path, prefix }. Default off. */
  metrics?: boolean | CustomerDataMetricsOptions
  /** The operators' console page at { prefix }. Default off. */
  console?: CustomerDataConsoleOptions
}

const plugin: FastifyPluginAsync<CustomerDataOptions> = async (fastify, options) => {
  await fastify.register(customerMetadata, options)
  await fastify.register(websocketMetadata, options)
  await fastify.register(customerLabels, options)
  if (options.routes !== false) {
    await fastify.register(userDataRoutes, { maxIdLength: options.maxIdLength, prefix: options.routePrefix })
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
