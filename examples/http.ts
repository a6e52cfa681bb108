// Small HTTP helpers shared by the example's routes: request bodies, bounded JSON, names.
import type { FastifyRequest } from 'fastify'
import { PassThrough, type Readable } from 'node:stream'
import type { BlobStore } from './storage/blobs.js'
import type { DocumentStore } from './storage/documents.js'
import type { Recognizer } from './recognizer.js'

/** Everything a route needs from the host. */
export interface Host {
  docs: DocumentStore
  files: BlobStore
  recognizer: Recognizer
  limits: Limits
}

export interface Limits {
  /** Sync recognize and WebSocket sessions. Default 100 MB (Watson's limit). */
  recognizeBytes: number
  /** Async jobs. Default 1 GB. */
  jobBytes: number
  /** Corpora, grammars, acoustic audio. Default 100 MB. */
  resourceBytes: number
  /** JSON request bodies. Default 1 MB. */
  jsonBytes: number
  /** Headers must arrive within this. Default 15 s. */
  headersTimeoutMs: number
  /** A whole request (headers and body) must arrive within this: a 1 GB job at about 2 MB/s. Default 10 min. */
  requestTimeoutMs: number
  /** A connection that sends nothing for this long is closed. Default 60 s. */
  idleTimeoutMs: number
  /** How often jobs past their results_ttl are removed. Default 60 s. */
  sweepMs: number
}

export const DEFAULT_LIMITS: Limits = {
  recognizeBytes: 100e6,
  jobBytes: 1e9,
  resourceBytes: 100e6,
  jsonBytes: 1e6,
  headersTimeoutMs: 15_000,
  requestTimeoutMs: 600_000,
  idleTimeoutMs: 60_000,
  sweepMs: 60_000
}

/** Resource names are 1-256 characters (Watson's documented limit). */
export const MAX_NAME_CHARS = 256

export class HttpError extends Error {
  readonly statusCode: number
  constructor (statusCode: number, message: string) {
    super(message)
    this.statusCode = statusCode
  }
}

export const notFound = (what: string): HttpError => new HttpError(404, `${what} not found.`)

/** The request's service instance (set by the authentication hook). */
export function instanceOf (request: FastifyRequest): string {
  return (request as FastifyRequest & { instanceId: string }).instanceId
}

/**
 * The request body as a stream its consumer may destroy (over a limit, say) without destroying the
 * request, which would reset the connection before the 413 is written. A client that goes away
 * mid-body fails the stream, so a half-written file is removed.
 */
export function bodyOf (request: FastifyRequest): Readable {
  const out = new PassThrough()
  const source = request.body as Readable | undefined
  if (source === undefined || source === null) return out.end()
  source.pipe(out)
  const cut = (): void => {
    if (!request.raw.complete) out.destroy(new HttpError(400, 'The request body ended before its declared length.'))
  }
  source.once('error', cut)
  request.raw.once('close', cut)
  return out
}

/** Reads and parses a JSON body, at most `limit` bytes; an empty body is `{}`. */
export async function readJson (request: FastifyRequest, limit: number): Promise<Record<string, unknown>> {
  if (request.body === undefined || request.body === null) return {}
  const body = bodyOf(request)
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    size += (chunk as Buffer).length
    if (size > limit) throw new HttpError(413, `The JSON body is larger than ${limit} bytes.`)
    chunks.push(chunk as Buffer)
  }
  if (size === 0) return {}
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object')
    return value
  } catch {
    throw new HttpError(400, 'The request body is not a valid JSON object.')
  }
}

/**
 * The multipart parser reports a body it cannot read (no boundary, cut short, a bad part header)
 * as a plain Error; that is the client's mistake, a 400. Coded errors (limits) and our own pass through.
 */
export function malformedMultipart (err: unknown): unknown {
  const e = err as { statusCode?: number, code?: string }
  if (err instanceof Error && Object.getPrototypeOf(err) === Error.prototype && e.statusCode === undefined && e.code === undefined) {
    return new HttpError(400, `The multipart body cannot be read (${err.message}): send multipart/form-data with its boundary and every part complete.`)
  }
  return err
}

export function requireString (value: unknown, name: string, max = 1024): string {
  if (typeof value !== 'string' || value.trim() === '') throw new HttpError(400, `Missing required parameter "${name}".`)
  if (value.length > max) throw new HttpError(400, `Parameter "${name}" is longer than ${max} characters.`)
  return value
}

export function optionalString (value: unknown, name: string, max = 1024): string | undefined {
  return value === undefined ? undefined : requireString(value, name, max)
}

/** A name used in a URL path (corpus, grammar, audio resource, word). */
export function resourceName (value: string, what: string): string {
  if (value.length === 0 || value.length > MAX_NAME_CHARS) throw new HttpError(400, `The ${what} name must be 1-${MAX_NAME_CHARS} characters.`)
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) throw new HttpError(400, `The ${what} name contains a control character.`)
  return value
}

export function contentTypeOf (request: FastifyRequest): string {
  return (request.headers['content-type'] ?? 'application/octet-stream').toString()
}

export function nowIso (): string {
  return new Date().toISOString()
}
