// Small HTTP helpers shared by the example's routes: Watson-shaped errors and bounded JSON bodies.
import type { FastifyRequest } from 'fastify'
import type { Readable } from 'node:stream'
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
}

export const DEFAULT_LIMITS: Limits = { recognizeBytes: 100e6, jobBytes: 1e9, resourceBytes: 100e6, jsonBytes: 1e6 }

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

/** Reads and parses a JSON body, at most `limit` bytes; an empty body is `{}`. */
export async function readJson (request: FastifyRequest, limit: number): Promise<Record<string, unknown>> {
  const body = request.body as Readable | undefined
  if (body === undefined || body === null) return {}
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
  if (value.length === 0 || value.length > 256) throw new HttpError(400, `The ${what} name must be 1-256 characters.`)
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
