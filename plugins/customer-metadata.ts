// Reads X-Watson-Metadata on every request and sets request.customerIds (DESIGN.md §3).
import fp from 'fastify-plugin'
import type { FastifyPluginCallback } from 'fastify'
import { FST_CUSTOMER_DATA_INVALID_OPTION } from '../lib/errors.js'
import { DEFAULT_HEADER_NAME, DEFAULT_MAX_ID_LENGTH, DEFAULT_MAX_IDS, EMPTY_IDS, parseMetadataHeader, type MetadataLimits } from '../lib/metadata.js'
import { sendWatsonError } from './watson-reply.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** Customer IDs the request carries (X-Watson-Metadata), in order; empty when none. */
    customerIds: readonly string[]
  }
}

export interface CustomerMetadataOptions extends MetadataLimits {
  /** The header to read. Default `x-watson-metadata`. */
  headerName?: string
}

export interface NormalizedMetadataOptions {
  headerName: string
  maxIdLength: number
  maxIds: number
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/ // RFC 9110 §5.1 field-name

export function normalizeMetadataOptions (options: CustomerMetadataOptions): NormalizedMetadataOptions {
  const headerName = options.headerName ?? DEFAULT_HEADER_NAME
  if (typeof headerName !== 'string' || !TOKEN.test(headerName)) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('headerName must be an HTTP header name such as "x-watson-metadata"')
  }
  const maxIdLength = options.maxIdLength ?? DEFAULT_MAX_ID_LENGTH
  const maxIds = options.maxIds ?? DEFAULT_MAX_IDS
  if (!Number.isInteger(maxIdLength) || maxIdLength < 1 || maxIdLength > 4096) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('maxIdLength must be an integer from 1 to 4096')
  }
  if (!Number.isInteger(maxIds) || maxIds < 1 || maxIds > 1024) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('maxIds must be an integer from 1 to 1024')
  }
  return { headerName: headerName.toLowerCase(), maxIdLength, maxIds }
}

const plugin: FastifyPluginCallback<CustomerMetadataOptions> = (fastify, options, done) => {
  let opts: NormalizedMetadataOptions
  try {
    opts = normalizeMetadataOptions(options)
  } catch (err) {
    done(err as Error)
    return
  }
  const { headerName } = opts
  const source = `${headerName} header`
  const parseOptions = { source, maxIdLength: opts.maxIdLength, maxIds: opts.maxIds }

  fastify.decorateRequest('customerIds', null as unknown as readonly string[]) // set by the hook below
  fastify.addHook('onRequest', function readCustomerMetadata (request, reply, next) {
    const raw = request.headers[headerName]
    if (raw === undefined) {
      request.customerIds = EMPTY_IDS
      next()
      return
    }
    try {
      // Node joins repeated header lines with ", ", which the grammar then rejects.
      request.customerIds = parseMetadataHeader(Array.isArray(raw) ? raw.join(', ') : raw, parseOptions)
    } catch (err) {
      sendWatsonError(reply, err)
      return
    }
    next()
  })
  done()
}

export const customerMetadata = fp(plugin, { name: 'fastify-customer-data/customer-metadata', fastify: '5.x' })
export default customerMetadata
