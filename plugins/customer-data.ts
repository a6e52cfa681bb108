// The default export: the four plugins registered with one options object.
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { customerLabels, type CustomerLabelsOptions } from './customer-labels.js'
import { customerMetadata } from './customer-metadata.js'
import { userDataRoutes } from './user-data-routes.js'
import { websocketMetadata, type WebsocketMetadataOptions } from './websocket-metadata.js'

export interface CustomerDataOptions extends CustomerLabelsOptions, WebsocketMetadataOptions {
  /** Prefix for the user_data routes, e.g. '/instances/:instance_id'. Default none. */
  routePrefix?: string
  /** Set false to register the user_data routes yourself. Default true. */
  routes?: boolean
}

const plugin: FastifyPluginAsync<CustomerDataOptions> = async (fastify, options) => {
  await fastify.register(customerMetadata, options)
  await fastify.register(websocketMetadata, options)
  await fastify.register(customerLabels, options)
  if (options.routes !== false) {
    await fastify.register(userDataRoutes, { maxIdLength: options.maxIdLength, prefix: options.routePrefix })
  }
}

export const customerData = fp(plugin, { name: 'fastify-customer-data', fastify: '5.x' })
export default customerData
