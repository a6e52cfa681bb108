// Sends an error in the Watson shape straight from a hook, so the host's own error handler is
// neither needed nor taken over (docs/ARCHITECTURE.md, "Errors").
import type { FastifyReply } from 'fastify'
import { watsonErrorBody } from '../lib/errors.js'

export function sendWatsonError (reply: FastifyReply, err: unknown): FastifyReply {
  const e = err as { statusCode?: number, message?: string, code?: string }
  const status = typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500
  // Our own coded errors teach the developer what to fix and carry no customer data; others stay hidden.
  const message = status < 500 || e.code?.startsWith('FST_CUSTOMER_DATA_') === true ? String(e.message) : 'Internal server error'
  if (reply.request.raw.headers.upgrade !== undefined) closeAfterRefusal(reply)
  return reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify(watsonErrorBody(status, message)))
}

/**
 * A refused WebSocket upgrade: nothing (neither Node nor @fastify/websocket, whose hooks may not
 * have run yet) ends the socket after the answer, and an open socket keeps close() waiting forever.
 */
function closeAfterRefusal (reply: FastifyReply): void {
  reply.header('connection', 'close')
  const socket = reply.request.raw.socket
  reply.raw.once('finish', () => { socket.destroySoon() })
}

/** As sendWatsonError, and a store outage is a 503 with Retry-After (RFC 9110 §10.2.3). */
export function sendStoreAware (reply: FastifyReply, err: unknown): FastifyReply {
  if ((err as { statusCode?: number }).statusCode === 503) {
    return reply.code(503).header('retry-after', RETRY_AFTER_SECONDS).type('application/json; charset=utf-8')
      .send(JSON.stringify(watsonErrorBody(503, (err as Error).message)))
  }
  return sendWatsonError(reply, err)
}

export const RETRY_AFTER_SECONDS = '5'
