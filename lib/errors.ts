// Every error the plugins produce, as @fastify/error constants (docs/ARCHITECTURE.md, "Errors").
// Messages say which header or parameter is wrong and how to fix it; none echoes a customer ID.
import createError from '@fastify/error'
import { STATUS_CODES } from 'node:http'

export const FST_CUSTOMER_DATA_METADATA_INVALID = createError<'FST_CUSTOMER_DATA_METADATA_INVALID', 400, [string, string]>(
  'FST_CUSTOMER_DATA_METADATA_INVALID',
  'Invalid %s: %s. Send "customer_id=<id>" pairs separated by ";", e.g. "customer_id=my_ID".',
  400
)
export const FST_CUSTOMER_DATA_METADATA_CONFLICT = createError(
  'FST_CUSTOMER_DATA_METADATA_CONFLICT',
  'The X-Watson-Metadata header and the x-watson-metadata query parameter name different customer IDs; send one of them, or the same value in both.',
  400
)
export const FST_CUSTOMER_DATA_CUSTOMER_ID_INVALID = createError<'FST_CUSTOMER_DATA_CUSTOMER_ID_INVALID', 400, [string]>(
  'FST_CUSTOMER_DATA_CUSTOMER_ID_INVALID',
  'Invalid customer_id query parameter: %s. Send exactly one customer_id, e.g. ?customer_id=my_ID.',
  400
)
export const FST_CUSTOMER_DATA_BAD_REQUEST = createError<'FST_CUSTOMER_DATA_BAD_REQUEST', 400, [string]>(
  'FST_CUSTOMER_DATA_BAD_REQUEST', '%s', 400
)
export const FST_CUSTOMER_DATA_UNAUTHORIZED = createError(
  'FST_CUSTOMER_DATA_UNAUTHORIZED',
  'Unauthorized: send the credentials of a service instance (Basic apikey:<key> or Bearer <key>).',
  401
)
export const FST_CUSTOMER_DATA_FORBIDDEN = createError<'FST_CUSTOMER_DATA_FORBIDDEN', 403, [string]>(
  'FST_CUSTOMER_DATA_FORBIDDEN', 'Forbidden: %s', 403
)
export const FST_CUSTOMER_DATA_DELETION_NOT_FOUND = createError(
  'FST_CUSTOMER_DATA_DELETION_NOT_FOUND',
  'No deletion with this id exists for this service instance.',
  404
)
export const FST_CUSTOMER_DATA_LEASE_DOOMED = createError(
  'FST_CUSTOMER_DATA_LEASE_DOOMED',
  "The customer's data was deleted while this request was storing it, so what it stored has been erased. Repeat the request if the data should be kept.",
  409
)
export const FST_CUSTOMER_DATA_STORE_UNAVAILABLE = createError(
  'FST_CUSTOMER_DATA_STORE_UNAVAILABLE',
  'The label store is unavailable, so nothing was stored. Retry later.',
  503
)
export const FST_CUSTOMER_DATA_NO_ERASER = createError<'FST_CUSTOMER_DATA_NO_ERASER', 500, [string]>(
  'FST_CUSTOMER_DATA_NO_ERASER',
  'No eraser is registered for kind "%s": add it to the erasers option before labeling resources of that kind.',
  500
)
export const FST_CUSTOMER_DATA_INVALID_OPTION = createError<'FST_CUSTOMER_DATA_INVALID_OPTION', 500, [string]>(
  'FST_CUSTOMER_DATA_INVALID_OPTION',
  'Invalid fastify-customer-data option: %s',
  500
)
export const FST_CUSTOMER_DATA_INVALID_RESOURCE = createError<'FST_CUSTOMER_DATA_INVALID_RESOURCE', 500, [string]>(
  'FST_CUSTOMER_DATA_INVALID_RESOURCE',
  'Invalid resource to label: %s',
  500
)
export const FST_CUSTOMER_DATA_CLOSED = createError(
  'FST_CUSTOMER_DATA_CLOSED',
  'The label store has been closed.',
  503
)

/** The Watson error body: `{ code, code_description, error }` (docs/ARCHITECTURE.md, "Errors"). */
export interface WatsonErrorBody {
  code: number
  code_description: string
  error: string
}

const DESCRIPTIONS: Record<number, string> = { 404: 'No Such Resource' }

export function watsonErrorBody (statusCode: number, message: string): WatsonErrorBody {
  return {
    code: statusCode,
    code_description: DESCRIPTIONS[statusCode] ?? STATUS_CODES[statusCode] ?? 'Error',
    error: message
  }
}

/** What Node's HTTP server cut before Fastify saw the request, by error code: status and message. */
const CLIENT_ERRORS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'The request headers are too large.'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'The request took too long to arrive: send the headers and body without pausing.']
}
const MALFORMED: [number, string] = [400, 'The request is malformed: a header or the request line contains a character HTTP does not allow (such as a control character).']

/**
 * A Fastify `clientErrorHandler` that answers requests Node's HTTP server rejected (a control
 * character in a header, headers too large, a request or headers timeout) with a Watson-shaped
 * error instead of an empty one.
 */
export function watsonClientErrorHandler (err: Error & { code?: string }, socket: import('node:net').Socket): void {
  if (!socket.writable) return
  const [status, message] = CLIENT_ERRORS[err.code ?? ''] ?? MALFORMED
  const body = JSON.stringify(watsonErrorBody(status, message))
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] as string}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
}
