// A Watson-compatible Speech to Text service built on fastify-customer-data, using only the
// package's public API, as a host would.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import multipart from '@fastify/multipart'
import websocket from '@fastify/websocket'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import customerData, { apiKeyInstances, postgresStore, sqliteStore, userDataRoutes, type Eraser, type LabelStore } from 'fastify-customer-data'
import { authenticate } from './authenticate.js'
import { DEFAULT_LIMITS, HttpError, type Host, type Limits } from './http.js'
import { startJobSweeper } from './job-sweeper.js'
import { BuiltinRecognizer, type Recognizer } from './recognizer.js'
import { customModelRoutes } from './routes/custom-models.js'
import { jobRoutes } from './routes/jobs.js'
import { recognizeRoutes } from './routes/recognize.js'
import { serverOptions } from './server-options.js'
import type { BlobStore } from './storage/blobs.js'
import type { DocumentStore } from './storage/documents.js'
import { FileStore } from './storage/file-blobs.js'
import { openExampleDatabase } from './storage/postgres.js'
import { postgresBlobs } from './storage/postgres-blobs.js'
import { postgresDocuments } from './storage/postgres-documents.js'
import { sqliteDocuments } from './storage/sqlite-documents.js'
import { notFoundHandler, watsonErrorHandler } from './watson-errors.js'

export interface ServerOptions {
  dataDir: string
  /** API key → instance id. */
  apiKeys: Record<string, string>
  /**
   * A postgres:// URL puts everything in PostgreSQL — labels, documents and every stored body — so
   * any replica on the same database serves and erases all of it; otherwise SQLite and files in dataDir.
   */
  databaseUrl?: string
  recognizer?: Recognizer
  limits?: Partial<Limits>
  logger?: FastifyServerOptions['logger']
  /** Passed to the customer-data plugin (tests shorten timers). */
  customerData?: { waitMs?: number, leaseMs?: number, reaperMs?: number }
}

/** The kinds this service labels: what Watson's labeled methods store for a customer. */
export const LABELED_KINDS = ['recognition', 'job', 'callback', 'corpus', 'word', 'grammar', 'audio'] as const

export async function buildServer (options: ServerOptions): Promise<FastifyInstance> {
  mkdirSync(options.dataDir, { recursive: true })
  let docs: DocumentStore
  let files: BlobStore
  let labels: LabelStore
  let closeStorage: () => Promise<void>
  if (options.databaseUrl !== undefined) {
    const db = await openExampleDatabase(options.databaseUrl)
    docs = postgresDocuments(db)
    files = postgresBlobs(db)
    labels = postgresStore({ connectionString: options.databaseUrl })
    closeStorage = async () => { await db.close() }
  } else {
    docs = sqliteDocuments(join(options.dataDir, 'documents.db'))
    files = new FileStore(options.dataDir)
    labels = sqliteStore({ path: join(options.dataDir, 'labels.db') })
    closeStorage = async () => { await docs.close() }
  }
  const host: Host = { docs, files, recognizer: options.recognizer ?? new BuiltinRecognizer(), limits: { ...DEFAULT_LIMITS, ...options.limits } }

  const app = Fastify({ ...serverOptions(host.limits), logger: options.logger ?? false })

  // Bodies are streams: audio goes to storage as it arrives, JSON is read with a limit by the route,
  // and the SDK's body-less JSON POSTs and binary-as-JSON recognize requests are accepted.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })
  await app.register(multipart, { limits: { fileSize: host.limits.recognizeBytes, files: 100, fields: 20, fieldSize: 1e6, parts: 120 } })
  await app.register(websocket, { options: { maxPayload: host.limits.recognizeBytes } })

  // Erasers: remove a resource's document and its body, then scrub the store's files so the erased
  // bytes do not linger (docs/ARCHITECTURE.md, Deletion). With DATABASE_URL both are rows every replica reaches.
  const erasers: Record<string, Eraser> = {}
  for (const kind of LABELED_KINDS) {
    erasers[kind] = async (ids, { instance }) => {
      await docs.delete(instance, kind, ids)
      await files.remove(instance, kind, ids)
      await docs.scrub()
    }
  }
  await app.register(customerData, {
    store: labels,
    instance: apiKeyInstances({ keys: options.apiKeys }),
    erasers,
    routes: false,
    ...options.customerData
  })
  app.addHook('onClose', async () => { await closeStorage() })

  // One Watson error sender for everything (examples/watson-errors.ts); 401 before any route runs.
  app.setErrorHandler(watsonErrorHandler)
  app.setNotFoundHandler(notFoundHandler)
  app.addHook('preHandler', authenticate)

  // The same routes at /v1/…, under a Watson instance URL (/instances/:instance_id/v1/…), and under
  // the service path of Watson's documented URLs (/speech-to-text/api/v1/…), so they work verbatim.
  for (const prefix of ['', '/instances/:instance_id', '/speech-to-text/api', '/speech-to-text/api/instances/:instance_id']) {
    await app.register(async (scope) => {
      recognizeRoutes(scope, host)
      jobRoutes(scope, host)
      customModelRoutes(scope, host)
    }, { prefix })
    await app.register(userDataRoutes, { prefix })
  }
  startJobSweeper(app, host)
  return app
}

export { HttpError }
