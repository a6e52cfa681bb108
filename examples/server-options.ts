// The example's Fastify and Node server options: timeouts, path parameter length, body limit and
// the Watson-shaped answers to what the router and Node's parser reject (README, "Example server").
import type { FastifyHttpOptions } from 'fastify'
import type { Server } from 'node:http'
import { MAX_NAME_CHARS, type Limits } from './http.js'
import { errors } from 'fastify-customer-data'
import { frameworkErrors } from './watson-errors.js'

/**
 * Fastify's router measures a path parameter after decodeURI, which leaves reserved characters
 * (/ ? # & = + and %) percent-encoded: a 256-character name can measure 256 × 3. Fastify's default
 * (100) refused names that Watson documents as valid.
 */
export const MAX_PARAM_LENGTH = MAX_NAME_CHARS * 3

/** Node checks header and request timeouts on this period (its default, 30 s, would let a timeout overrun by that much). */
const TIMEOUT_CHECK_MS = 1000

export function serverOptions (limits: Limits): FastifyHttpOptions<Server> {
  return {
    bodyLimit: limits.jsonBytes,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.idleTimeoutMs,
    http: { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: Math.min(TIMEOUT_CHECK_MS, limits.headersTimeoutMs) },
    clientErrorHandler: errors.watsonClientErrorHandler,
    frameworkErrors
  }
}
