// On WebSocket upgrades the Watson SDK labels with the x-watson-metadata query parameter
// (docs/ARCHITECTURE.md, "Metadata"). A bad value, a repeated parameter, or a header that disagrees is a 400 before
// the upgrade happens.
import fp from 'fastify-plugin'
import type { FastifyPluginCallback } from 'fastify'
import { FST_CUSTOMER_DATA_METADATA_CONFLICT } from '../lib/errors.js'
import { parseMetadataQuery } from '../lib/metadata.js'
import { checkKnownKeys, checkMetadataOptions, FASTIFY_PLUGIN_KEYS } from '../lib/options.js'
import { METADATA_OPTION_KEYS, type CustomerMetadataOptions } from './customer-metadata.js'
import { sendWatsonError } from './watson-reply.js'

export type WebsocketMetadataOptions = CustomerMetadataOptions

function sameIds (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id))
}

const plugin: FastifyPluginCallback<WebsocketMetadataOptions> = (fastify, options, done) => {
  let parseOptions: { maxIdLength: number, maxIds: number, parameter: string }
  let headerName: string
  try {
    const opts = checkMetadataOptions(checkKnownKeys('websocketMetadata', options, [...METADATA_OPTION_KEYS, ...FASTIFY_PLUGIN_KEYS]))
    headerName = opts.headerName
    parseOptions = { maxIdLength: opts.maxIdLength, maxIds: opts.maxIds, parameter: opts.queryParameter }
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
