// The one place the example answers an error: every route error, router error (404, 414, bad URL),
// 401 and client error leaves here in Watson's shape {code, code_description, error}, because the
// SDK shows `error` to its user (docs/ARCHITECTURE.md, "Errors").
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { errors } from 'fastify-customer-data'
import { BodyTooLarge } from './storage/blobs.js'

/** After a 413, a body declared at most this large is drained so the connection stays usable; a larger one closes it. */
export const MAX_DRAIN_BYTES = 1024 * 1024

/** What the multipart parser and Fastify call a body over a limit. */
const TOO_LARGE_CODES = new Set(['FST_REQ_FILE_TOO_LARGE', 'FST_PARTS_LIMIT', 'FST_FILES_LIMIT', 'FST_FIELDS_LIMIT', 'FST_ERR_CTP_BODY_TOO_LARGE'])

export function sendWatsonError (reply: FastifyReply, status: number, message: string): FastifyReply {
  if (status === 503) reply.header('retry-after', '5')
  return reply.code(status).type('application/json; charset=utf-8').send(errors.watsonErrorBody(status, message))
}

/**
 * After a 413 the rest of the body is still on the wire. Destroying the request would reset the
 * connection under the 413; instead a small remainder is drained so the next request on the
 * connection works, and a large one is cut with `Connection: close` once the 413 is written.
 */
function settleUnreadBody (request: FastifyRequest, reply: FastifyReply): void {
  const raw = request.raw
  if (raw.complete || raw.destroyed) return
  const declared = Number(raw.headers['content-length'] ?? Infinity)
  if (!(declared <= MAX_DRAIN_BYTES)) reply.header('connection', 'close')
  raw.unpipe()
  raw.resume()
}

export function watsonErrorHandler (err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  let status = err.statusCode ?? 500
  let message = err.message
  if (err instanceof BodyTooLarge || TOO_LARGE_CODES.has(err.code)) {
    status = 413
    if (!(err instanceof BodyTooLarge)) message = `The request body exceeds a limit: ${err.message}`
  } else if (status >= 500 && status !== 503) {
    request.log.error({ err }, 'request failed')
    message = 'Internal server error.'
  }
  if (status === 413) settleUnreadBody(request, reply)
  sendWatsonError(reply, status, message)
}

export function notFoundHandler (_request: FastifyRequest, reply: FastifyReply): void {
  sendWatsonError(reply, 404, 'No such child resource.')
}

/** Fastify's router errors (a URL that does not decode, a path parameter over maxParamLength). */
export function frameworkErrors (err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') {
    sendWatsonError(reply, 414, 'A name in the URL path is too long: resource names are at most 256 characters.')
  } else if (err.code === 'FST_ERR_BAD_URL') {
    sendWatsonError(reply, 400, 'The URL path is not valid: percent-encode it as UTF-8 (RFC 3986).')
  } else {
    sendWatsonError(reply, err.statusCode ?? 400, err.message)
  }
}
