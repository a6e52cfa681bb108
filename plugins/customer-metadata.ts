// Reads X-Watson-Metadata on every request and sets request.customerIds (docs/ARCHITECTURE.md,
// "Metadata"); scrubs customer IDs, keys and secrets from the logger's lines ("Logs").
import fp from 'fastify-plugin'
import type { FastifyPluginCallback } from 'fastify'
import { FST_CUSTOMER_DATA_INVALID_OPTION } from '../lib/errors.js'
import { logRedactor, redactPinoLogger, REDACTED_HEADERS, REDACTED_PARAMETERS } from '../lib/log-redaction.js'
import { EMPTY_IDS, parseMetadataHeader, parseMetadataLines, type MetadataLimits } from '../lib/metadata.js'
import { checkKnownKeys, checkMetadataOptions, FASTIFY_PLUGIN_KEYS } from '../lib/options.js'
import { REGISTERED_TWICE } from './route-scope.js'
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
  /** The query parameter read on WebSocket upgrades (also scrubbed from logs). Default `x-watson-metadata`. */
  queryParameter?: string
  /**
   * Scrub customer IDs, API keys, secrets and tokens from every line the app's logger writes.
   * Default true. With a logger that is not pino, set false and redact in your logger yourself.
   */
  redactLogs?: boolean
  /** More query parameters whose values never reach a log (customer_id, user_secret, access_token… always). */
  redactParameters?: string[]
  /** More headers whose values never reach a log (Authorization, Cookie, the metadata header… always). */
  redactHeaders?: string[]
}

export const METADATA_OPTION_KEYS = ['headerName', 'queryParameter', 'maxIdLength', 'maxIds', 'redactLogs', 'redactParameters', 'redactHeaders'] as const

/** The lines of one header as they came on the wire (Node's rawHeaders: name, value, name, value…). */
function headerLines (rawHeaders: string[], name: string): string[] {
  const lines: string[] = []
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i].length === name.length && rawHeaders[i].toLowerCase() === name) lines.push(rawHeaders[i + 1])
  }
  return lines
}

const plugin: FastifyPluginCallback<CustomerMetadataOptions> = (fastify, options, done) => {
  let opts: ReturnType<typeof checkMetadataOptions>
  try {
    opts = checkMetadataOptions(checkKnownKeys('customerMetadata', options, [...METADATA_OPTION_KEYS, ...FASTIFY_PLUGIN_KEYS]))
    if (opts.redactLogs) {
      const redact = logRedactor(
        [...REDACTED_PARAMETERS, opts.queryParameter, ...opts.redactParameters],
        [...REDACTED_HEADERS, opts.headerName, ...opts.redactHeaders]
      )
      const silent = (fastify.log as { level?: string }).level === undefined || fastify.log.level === 'silent'
      if (!redactPinoLogger(fastify.log, redact) && !silent) {
        throw new FST_CUSTOMER_DATA_INVALID_OPTION('redactLogs: the app\'s logger is not pino, so its lines cannot be scrubbed of customer IDs and keys; redact them in your logger (see README, Security) and pass redactLogs: false')
      }
    }
  } catch (err) {
    done(err as Error)
    return
  }
  const { headerName } = opts
  const parseOptions = { source: `${headerName} header`, maxIdLength: opts.maxIdLength, maxIds: opts.maxIds }

  if (fastify.hasRequestDecorator('customerIds')) {
    done(new FST_CUSTOMER_DATA_INVALID_OPTION(REGISTERED_TWICE))
    return
  }
  fastify.decorateRequest('customerIds', null as unknown as readonly string[]) // set by the hook below
  fastify.addHook('onRequest', function readCustomerMetadata (request, reply, next) {
    const raw = request.headers[headerName]
    if (raw === undefined) {
      request.customerIds = EMPTY_IDS
      next()
      return
    }
    try {
      // Node joins repeated lines with ", ": then each line is read on its own, never the joined text.
      const lines = typeof raw === 'string' && raw.includes(', ') ? headerLines(request.raw.rawHeaders, headerName) : null
      request.customerIds = lines !== null && lines.length > 1
        ? parseMetadataLines(lines, parseOptions)
        : parseMetadataHeader(Array.isArray(raw) ? raw.join(', ') : raw, parseOptions)
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
