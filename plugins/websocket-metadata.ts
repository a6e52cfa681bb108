// On WebSocket upgrades the Watson SDK labels with the x-watson-metadata query parameter
// (DESIGN.md §3). A bad value, a repeated parameter, or a header that disagrees is a 400 before
// the upgrade happens.
import fp from 'fastify-plugin'
import type { FastifyPluginCallback } from 'fastify'
import { FST_CUSTOMER_DATA_INVALID_OPTION, FST_CUSTOMER_DATA_METADATA_CONFLICT } from '../lib/errors.js'
import { QUERY_PARAMETER, parseMetadataQuery } from '../lib/metadata.js'
import { normalizeMetadataOptions, type CustomerMetadataOptions } from './customer-metadata.js'
import { sendWatsonError } from './watson-reply.js'

export interface WebsocketMetadataOptions extends CustomerMetadataOptions {
  /** The query parameter to read on upgrades. Default `x-watson-metadata`. */
  queryParameter?: string
}

function sameIds (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id))
}

const plugin: FastifyPluginCallback<WebsocketMetadataOptions> = (fastify, options, done) => {
  let parameter: string
  let parseOptions: { maxIdLength: number, maxIds: number, parameter: string }
  let headerName: string
  try {
    const opts = normalizeMetadataOptions(options)
    parameter = options.queryParameter ?? QUERY_PARAMETER
    if (typeof parameter !== 'string' || parameter.length === 0 || parameter.length > 256) {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION('queryParameter must be a non-empty string')
    }
    headerName = opts.headerName
    parseOptions = { maxIdLength: opts.maxIdLength, maxIds: opts.maxIds, parameter }
  } catch (err) {
    done(err as Error)
    return
  }

  fastify.addHook('onRequest', function readWebsocketMetadata (request, reply, next) {
    const upgrade = request.headers.upgrade
    if (typeof upgrade !== 'string' || upgrade.toLowerCase() !== 'websocket') {
      next()
      return
    }
    const url = request.raw.url ?? ''
    const q = url.indexOf('?')
    try {
      const fromQuery = q === -1 ? undefined : parseMetadataQuery(url.slice(q + 1), parseOptions)
      if (fromQuery !== undefined) {
        if (request.headers[headerName] !== undefined && !sameIds(fromQuery, request.customerIds)) {
          throw new FST_CUSTOMER_DATA_METADATA_CONFLICT()
        }
        request.customerIds = fromQuery
      }
    } catch (err) {
      sendWatsonError(reply, err)
      return
    }
    next()
  })
  done()
}

export const websocketMetadata = fp(plugin, {
  name: 'fastify-customer-data/websocket-metadata',
  fastify: '5.x',
  dependencies: ['fastify-customer-data/customer-metadata']
})
export default websocketMetadata
