// The operators' console (docs/ARCHITECTURE.md, Operations): a page, served by this plugin with
// everything it needs, where someone holding an instance's API key sees that instance's deletions
// and why any is stuck, looks up a customer's data and deletes it. Off unless registered.
//
// Sign-in: the page posts the API key; the plugin asks the host's instance resolver about the
// sign-in request as if it carried `Authorization: Basic base64(apikey:<key>)`, the Watson
// convention, so the console accepts exactly the keys the API accepts.
import fp from 'fastify-plugin'
import { readFileSync } from 'node:fs'
import { Type } from '@fastify/type-provider-typebox'
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { ConsoleSessions, type ConsoleSession } from '../lib/console-sessions.js'
import { FST_CUSTOMER_DATA_BAD_REQUEST, FST_CUSTOMER_DATA_DELETION_NOT_FOUND, FST_CUSTOMER_DATA_FORBIDDEN, FST_CUSTOMER_DATA_INVALID_OPTION, FST_CUSTOMER_DATA_UNAUTHORIZED } from '../lib/errors.js'
import { DEFAULT_MAX_ID_LENGTH, validateCustomerId } from '../lib/metadata.js'
import { DeletionListQuery, DEFAULT_LIST_LIMIT, deletionListBody, deletionOverviewBody } from './deletion-overview-wire.js'
import { sendStoreAware } from './watson-reply.js'

export interface CustomerDataConsoleOptions {
  /** Where the console lives, e.g. '/console'. Required. */
  prefix: string
  /** A session unused this long ends. Default 30 minutes. */
  idleMs?: number
  /** A session ends this long after sign-in. Default 8 hours. */
  maxAgeMs?: number
  /** Most live sessions in this process. Default 10 000. */
  maxSessions?: number
  /** Mark the cookie Secure. Default: when the request came over HTTPS (see Fastify's trustProxy). */
  secureCookie?: boolean
  /** Longest customer ID accepted, as the other routes. Default 256. */
  maxIdLength?: number
}

export const CONSOLE_DEFAULTS = { idleMs: 30 * 60_000, maxAgeMs: 8 * 3600_000, maxSessions: 10_000 } as const

const COOKIE = 'customer_data_console'
const CSRF_HEADER = 'x-csrf-token'
const PREFIX = /^(\/[A-Za-z0-9._~-]+)+$/
const MAX_API_KEY = 4096
/** Resources per export page the console shows. */
const LOOKUP_LIMIT = 200
const ASSETS = new URL('./console-assets/', import.meta.url)

/** Nothing but this plugin's own files may run or load on the page, and nobody may frame it. */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store'
}

interface Normalized { prefix: string, idleMs: number, maxAgeMs: number, maxSessions: number, secureCookie: boolean | undefined, maxIdLength: number }

function normalize (options: CustomerDataConsoleOptions): Normalized {
  if (options === null || typeof options !== 'object' || typeof options.prefix !== 'string' || !PREFIX.test(options.prefix)) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('console.prefix must be a path such as "/console" (letters, digits and ._~- between slashes)')
  }
  const number = (name: keyof typeof CONSOLE_DEFAULTS): number => {
    const value = options[name] ?? CONSOLE_DEFAULTS[name]
    if (!Number.isInteger(value) || value <= 0) throw new FST_CUSTOMER_DATA_INVALID_OPTION(`console.${name} must be a positive integer`)
    return value
  }
  if (options.secureCookie !== undefined && typeof options.secureCookie !== 'boolean') throw new FST_CUSTOMER_DATA_INVALID_OPTION('console.secureCookie must be a boolean')
  return {
    prefix: options.prefix,
    idleMs: number('idleMs'),
    maxAgeMs: number('maxAgeMs'),
    maxSessions: number('maxSessions'),
    secureCookie: options.secureCookie,
    maxIdLength: options.maxIdLength ?? DEFAULT_MAX_ID_LENGTH
  }
}

/** The session id in the request's Cookie header, if any. */
function cookieValue (request: FastifyRequest): string | undefined {
  const header = request.headers.cookie
  if (typeof header !== 'string') return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq !== -1 && part.slice(0, eq).trim() === COOKIE) return part.slice(eq + 1).trim()
  }
  return undefined
}

/** The sign-in request as the instance resolver sees it: the key as Watson Basic credentials. */
function withApiKey (request: FastifyRequest, apiKey: string): FastifyRequest {
  const authorization = 'Basic ' + Buffer.from(`apikey:${apiKey}`, 'utf8').toString('base64')
  const headers = { ...request.headers, authorization }
  delete headers.cookie
  return Object.create(request, { headers: { value: headers, enumerable: true } })
}

const kSession = Symbol('customerData.consoleSession')
type WithSession = FastifyRequest & { [kSession]: ConsoleSession | null }

const CustomerIdBody = Type.Object({ customer_id: Type.String({ minLength: 1 }) })

const plugin: FastifyPluginAsync<CustomerDataConsoleOptions> = async (fastify, options) => {
  const opts = normalize(options)
  const api = fastify.customerData
  const sessions = new ConsoleSessions({ idleMs: opts.idleMs, maxAgeMs: opts.maxAgeMs, max: opts.maxSessions })
  const page = readFileSync(new URL('index.html', ASSETS), 'utf8').replaceAll('%PREFIX%', opts.prefix)
  const script = readFileSync(new URL('console.js', ASSETS))
  const style = readFileSync(new URL('console.css', ASSETS))
  const icon = readFileSync(new URL('favicon.svg', ASSETS))

  await fastify.register(async function consoleRoutes (app) {
    app.decorateRequest(kSession, null)
    app.addHook('onSend', async (request, reply, payload) => {
      reply.headers(SECURITY_HEADERS)
      return payload
    })
    app.setErrorHandler(function consoleErrors (err: { statusCode?: number, validation?: unknown, message: string }, request, reply) {
      if (err.validation !== undefined) return sendStoreAware(reply, new FST_CUSTOMER_DATA_BAD_REQUEST(`Invalid ${err.message}`))
      if ((err.statusCode ?? 500) >= 500 && err.statusCode !== 503) request.log.error({ err }, 'customer data console route failed')
      return sendStoreAware(reply, err)
    })

    function setCookie (request: FastifyRequest, reply: FastifyReply, value: string, maxAgeSeconds: number): void {
      const secure = opts.secureCookie ?? request.protocol === 'https'
      reply.header('set-cookie', `${COOKIE}=${value}; Path=${opts.prefix}; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`)
    }

    /** Every API call but sign-in needs a live session; a state-changing one also its CSRF token. */
    async function requireSession (request: FastifyRequest): Promise<void> {
      const session = sessions.get(cookieValue(request), Date.now())
      if (session === null) throw new FST_CUSTOMER_DATA_UNAUTHORIZED()
      if (request.method !== 'GET' && !ConsoleSessions.csrfMatches(session, request.headers[CSRF_HEADER])) {
        throw new FST_CUSTOMER_DATA_FORBIDDEN(`the ${CSRF_HEADER} header is missing or wrong; reload the console and try again.`)
      }
      (request as WithSession)[kSession] = session
    }
    const instanceOf = (request: FastifyRequest): string => ((request as WithSession)[kSession] as ConsoleSession).instance

    app.get('/', async (request, reply) => reply.type('text/html; charset=utf-8').send(page))
    app.get('/console.js', async (request, reply) => reply.type('text/javascript; charset=utf-8').send(script))
    app.get('/console.css', async (request, reply) => reply.type('text/css; charset=utf-8').send(style))
    app.get('/favicon.svg', async (request, reply) => reply.type('image/svg+xml').send(icon))

    app.post('/api/session', {
      schema: { body: Type.Object({ api_key: Type.String({ minLength: 1, maxLength: MAX_API_KEY }) }) }
    }, async function signIn (request, reply) {
      const { api_key: apiKey } = request.body as { api_key: string }
      const instance = await api.resolveInstance(withApiKey(request, apiKey))
      if (instance === null) throw new FST_CUSTOMER_DATA_UNAUTHORIZED()
      sessions.end(cookieValue(request)) // a sign-in never keeps an id the browser had before
      const { id, session } = sessions.create(instance, Date.now())
      setCookie(request, reply, id, Math.floor(opts.maxAgeMs / 1000))
      return { instance, csrf_token: session.csrf }
    })

    app.get('/api/session', { preHandler: requireSession }, async (request) => {
      const session = (request as WithSession)[kSession] as ConsoleSession
      return { instance: session.instance, csrf_token: session.csrf }
    })

    app.delete('/api/session', { preHandler: requireSession }, async function signOut (request, reply) {
      sessions.end(cookieValue(request))
      setCookie(request, reply, '', 0)
      return reply.code(204).send()
    })

    app.get('/api/deletions', { preHandler: requireSession, schema: { querystring: DeletionListQuery } }, async (request) => {
      const { status, limit, cursor } = request.query as { status?: 'running' | 'completed', limit?: number, cursor?: string }
      return deletionListBody(await api.listDeletions(instanceOf(request), { status, limit: limit ?? DEFAULT_LIST_LIMIT, cursor: cursor ?? null }))
    })

    app.get('/api/deletions/:deletion_id', {
      preHandler: requireSession,
      schema: { params: Type.Object({ deletion_id: Type.String({ maxLength: 128 }) }) }
    }, async (request) => {
      const deletion = await api.deletionOverview(instanceOf(request), (request.params as { deletion_id: string }).deletion_id)
      if (deletion === null) throw new FST_CUSTOMER_DATA_DELETION_NOT_FOUND()
      return deletionOverviewBody(deletion)
    })

    // A customer ID travels in a POST body, never in a URL that access logs keep.
    app.post('/api/lookup', {
      preHandler: requireSession,
      schema: { body: Type.Object({ customer_id: Type.String({ minLength: 1 }), cursor: Type.Optional(Type.String({ maxLength: 64, pattern: '^[0-9]+$' })) }) }
    }, async function lookUp (request) {
      const body = request.body as { customer_id: string, cursor?: string }
      const customerId = validateCustomerId(body.customer_id, opts.maxIdLength)
      const found = await api.exportLabels(instanceOf(request), customerId, { limit: LOOKUP_LIMIT, cursor: body.cursor ?? null })
      return {
        resources: found.items.map((r) => ({ kind: r.kind, id: r.id, labeled_at: new Date(r.labeledAt).toISOString() })),
        next_cursor: found.next
      }
    })

    app.post('/api/deletions', { preHandler: requireSession, schema: { body: CustomerIdBody } }, async function deleteCustomer (request, reply) {
      const customerId = validateCustomerId((request.body as { customer_id: string }).customer_id, opts.maxIdLength)
      const instance = instanceOf(request)
      const recorded = await api.requestDeletion(instance, customerId, { waitMs: 0 })
      const deletion = await api.deletionOverview(instance, recorded.id)
      return reply.code(202).send(deletionOverviewBody(deletion ?? { ...recorded, progress: { remaining: 0, waiting: 0, attempts: 0, failures: {} } }))
    })
  }, { prefix: opts.prefix })
}

export const customerDataConsole = fp(plugin, {
  name: 'fastify-customer-data/console',
  fastify: '5.x',
  dependencies: ['fastify-customer-data/customer-labels']
})
export default customerDataConsole
