// Labels, erasers, leases and the deletion engine, wired into Fastify (docs/ARCHITECTURE.md, "Labels and leases", "Deletion").
import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import {
  FST_CUSTOMER_DATA_BAD_REQUEST, FST_CUSTOMER_DATA_INVALID_OPTION, FST_CUSTOMER_DATA_INVALID_RESOURCE, FST_CUSTOMER_DATA_LEASE_DOOMED,
  FST_CUSTOMER_DATA_NO_ERASER, FST_CUSTOMER_DATA_UNAUTHORIZED, watsonErrorBody
} from '../lib/errors.js'
import { CustomerDataEngine, isValidResourceId, MAX_RESOURCE_ID, type EngineOptions } from '../lib/engine.js'
import type { Lease } from '../lib/lease.js'
import type { DeletionRecord, ExportPage, LabelStore } from '../lib/store.js'
import { sqliteStore } from '../lib/stores/sqlite.js'
import { checkKnownKeys, checkMilliseconds, FASTIFY_PLUGIN_KEYS, MAX_TIMER_MS } from '../lib/options.js'
import { customerDataOf, guardRoutesOutside } from './route-scope.js'
import { RETRY_AFTER_SECONDS, sendStoreAware, sendWatsonError } from './watson-reply.js'
import type { DeletionEventMap, DeletionEventName } from '../lib/deletion-events.js'
import { deletionOverview, listDeletionOverviews, type DeletionOverview, type DeletionOverviewPage, type ListDeletionOverviewsOptions } from '../lib/deletion-overview.js'

export interface LabelOptions {
  /** The write replaces the resource: its commit withdraws the labels other customers had on it. */
  replace?: boolean
}

export type RequestInstanceResolver = (request: FastifyRequest) => string | null | Promise<string | null>

export interface CustomerLabelsOptions extends Omit<EngineOptions, 'logger' | 'store'> {
  /** Where labels and deletion records live. Default: sqliteStore({ path: './customer-data.db' }). */
  store?: LabelStore
  /** Required: the service instance a request's credentials belong to, or null (→ 401). */
  instance: RequestInstanceResolver
  /** How long DELETE /v1/user_data waits for completion before answering 202. Default 5000 ms. */
  waitMs?: number
}

/**
 * The request a route config's `id` receives: params and query typed as the strings a URL carries,
 * so `id: (request) => request.params.word` type-checks whatever generics the route declares.
 */
export type RouteCustomerDataRequest = FastifyRequest<{ Params: Record<string, string>, Querystring: Record<string, string> }>

export interface RouteCustomerDataConfig {
  kind: string
  /** The id of the resource the route stores (or deletes, with `withdraw`). */
  id: (request: RouteCustomerDataRequest) => string
  /**
   * The route replaces the resource: after it succeeds, the labels other customers had on it are
   * withdrawn, so their deletions no longer reach it. Default false.
   */
  replace?: boolean
  /**
   * The route deletes the resource: it labels nothing, and after it succeeds (2xx) every label of
   * the resource is withdrawn. Default false.
   */
  withdraw?: boolean
}

/** What the host can do outside a request: label for background jobs, delete, export. */
export interface CustomerDataApi {
  readonly engine: CustomerDataEngine
  readonly waitMs: number
  resolveInstance(request: FastifyRequest): Promise<string | null>
  label(instance: string, customerIds: readonly string[], kind: string, id: string, options?: LabelOptions): Promise<Lease>
  /** Withdraws every committed label of these resources (the host deleted or replaced them). */
  withdraw(instance: string, kind: string, ids: string | string[]): Promise<number>
  requestDeletion(instance: string, customerId: string, options?: { waitMs?: number }): Promise<DeletionRecord>
  getDeletion(instance: string, deletionId: string): Promise<DeletionRecord | null>
  exportLabels(instance: string, customerId: string, options?: { limit?: number, cursor?: string | null }): Promise<ExportPage>
  // Operations: what operators see of deletions, and what the engine tells as it works.
  /** The instance's deletions, newest first, each with its progress. */
  listDeletions(instance: string, options: ListDeletionOverviewsOptions): Promise<DeletionOverviewPage>
  /** One deletion with its progress, or null when the instance has none with this id. */
  deletionOverview(instance: string, deletionId: string): Promise<DeletionOverview | null>
  on<E extends DeletionEventName>(event: E, listener: (...payload: DeletionEventMap[E]) => void): CustomerDataApi
  off<E extends DeletionEventName>(event: E, listener: (...payload: DeletionEventMap[E]) => void): CustomerDataApi
}

declare module 'fastify' {
  interface FastifyInstance {
    customerData: CustomerDataApi
  }
  interface FastifyRequest {
    /** Labels what this request stores for its customers (request.customerIds). */
    customerData: RequestCustomerData
  }
  interface FastifyContextConfig {
    /** Labels the resource this route stores before the handler runs; commits after it succeeds. */
    customerData?: RouteCustomerDataConfig
  }
}

/** request.customerData: labels resources for the request's customers within its instance. */
export class RequestCustomerData {
  readonly #request: FastifyRequest
  readonly #api: CustomerDataApi
  #instance: Promise<string | null> | undefined

  constructor (request: FastifyRequest, api: CustomerDataApi) {
    this.#request = request
    this.#api = api
  }

  /** The request's service instance; throws FST_CUSTOMER_DATA_UNAUTHORIZED (401) when it has none. */
  async instance (): Promise<string> {
    this.#instance ??= this.#api.resolveInstance(this.#request)
    const instance = await this.#instance
    if (instance === null) throw new FST_CUSTOMER_DATA_UNAUTHORIZED()
    return instance
  }

  /**
   * Write-ahead label: resolves once (kind, id) is durably labeled for every customer of the
   * request. Write the data, then `await lease.commit()`. Without customer IDs nothing is labeled.
   */
  async label (kind: string, id: string, options?: LabelOptions): Promise<Lease> {
    const customerIds = this.#request.customerIds ?? []
    // A replacing write withdraws the old labels even when it names no customer itself.
    const instance = customerIds.length === 0 && options?.replace !== true ? '' : await this.instance()
    return await this.#api.label(instance, customerIds, kind, id, options)
  }

  /**
   * Withdraws every label of a resource this request deleted (or replaced without labeling):
   * call it after the resource is gone, so a later resource with the same kind and id, stored for
   * another customer, is never erased by an earlier customer's deletion.
   */
  async withdraw (kind: string, id: string | string[]): Promise<number> {
    return await this.#api.withdraw(await this.instance(), kind, id)
  }

  /** label → fn(signal) → commit; on failure the label stays (pending) and the error is rethrown. */
  async store<T> (kind: string, id: string, fn: (signal: AbortSignal) => Promise<T>, options?: LabelOptions): Promise<T> {
    const lease = await this.label(kind, id, options)
    let result: T
    try {
      result = await fn(lease.signal)
    } catch (err) {
      await lease.release()
      throw err
    }
    await lease.commit()
    return result
  }
}

const kRequestData = Symbol('customerData.request')
const kRouteLease = Symbol('customerData.lease')
/** The route's rule, read once per request (Fastify builds a new routeOptions object at every read). */
const kRouteRule = Symbol('customerData.rule')
/** The route's label or withdrawal was finished by onSend (a hijacked reply never runs it). */
const kFinished = Symbol('customerData.finished')
/** The route's preHandler ran: an earlier hook that answered means the handler never ran either. */
const kReached = Symbol('customerData.reached')
const DEFAULT_WAIT_MS = 5000
export const DEFAULT_SQLITE_PATH = 'customer-data.db'
const MAX_EXPORT_LIMIT = 1000
/** WebSocket close codes that end a session normally (RFC 6455 §7.4.1): its label is committed. */
const NORMAL_CLOSE_CODES = new Set([1000, 1001, 1005])

export const LABELS_OPTION_KEYS = ['store', 'instance', 'erasers', 'secret', 'waitMs', 'leaseMs', 'batchSize', 'reaperMs', 'eraserTimeoutMs', 'retryMinMs', 'retryMaxMs'] as const

type WithState = FastifyRequest & { [kRequestData]?: RequestCustomerData, [kRouteLease]?: Lease | null, [kRouteRule]?: RouteRule | false | null, [kFinished]?: boolean, [kReached]?: boolean }

/** What the hooks need of a route's config.customerData, checked once per route. */
type RouteRule = { ok: true, cfg: RouteCustomerDataConfig } | { ok: false, error: Error }

/** The WebSocket server @fastify/websocket decorates, as far as this plugin needs it. */
interface WebSocketServerLike {
  on(event: 'connection', listener: (socket: { once(event: 'close', fn: (code: number) => void): void }, raw: object) => void): void
}

const plugin: FastifyPluginAsync<CustomerLabelsOptions> = async (fastify, options) => {
  checkKnownKeys('customerLabels', options, [...LABELS_OPTION_KEYS, ...FASTIFY_PLUGIN_KEYS])
  if (typeof options.instance !== 'function') {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('instance is required: pass (request) => instanceId | null, for example apiKeyInstances({ keys: { [apiKey]: instanceId } })')
  }
  const waitMs = checkMilliseconds('waitMs', options.waitMs, { min: 0, max: MAX_TIMER_MS }, DEFAULT_WAIT_MS)
  const resolver = options.instance
  const engine = new CustomerDataEngine({ ...options, store: options.store ?? sqliteStore({ path: DEFAULT_SQLITE_PATH }), logger: fastify.log })

  const api: CustomerDataApi = {
    engine,
    waitMs,
    async resolveInstance (request) {
      const instance = await resolver(request)
      if (instance === null || instance === undefined) return null
      if (typeof instance !== 'string' || instance.length === 0) throw new TypeError('the instance resolver must return a non-empty string or null')
      return instance
    },
    label: (instance, customerIds, kind, id, opts) => engine.label(instance, customerIds, kind, id, opts),
    withdraw: (instance, kind, ids) => engine.withdraw(instance, kind, Array.isArray(ids) ? ids : [ids]),
    requestDeletion: (instance, customerId, opts) => engine.requestDeletion(instance, customerId, opts?.waitMs ?? waitMs),
    getDeletion: (instance, deletionId) => engine.getDeletion(instance, deletionId),
    exportLabels: (instance, customerId, opts) => {
      const limit = Math.min(MAX_EXPORT_LIMIT, Math.max(1, Math.floor(opts?.limit ?? 100)))
      return engine.exportLabels(instance, customerId, limit, opts?.cursor ?? null)
    },
    listDeletions: (instance, opts) => listDeletionOverviews(engine.store, instance, opts),
    deletionOverview: (instance, deletionId) => deletionOverview(engine.store, instance, deletionId),
    on (event, listener) { engine.events.subscribe(event, listener); return api },
    off (event, listener) { engine.events.unsubscribe(event, listener); return api }
  }

  await engine.start()
  fastify.addHook('onClose', async () => { await engine.close() })
  fastify.decorate('customerData', api)
  fastify.decorateRequest('customerData', {
    getter (this: WithState) {
      this[kRequestData] ??= new RequestCustomerData(this, api)
      return this[kRequestData]
    }
  } as never)
  fastify.decorateRequest(kRouteLease, null)
  fastify.decorateRequest(kRouteRule, null)
  fastify.decorateRequest(kFinished, false)
  fastify.decorateRequest(kReached, false)

  // Each route's config is checked once. Routes registered after this plugin are checked as they
  // are added (a bad one stops the app from starting); the hooks below check any other route on
  // its first request, so no registration order can let a route store data unlabeled.
  const rules = new WeakMap<object, RouteRule>()
  function ruleOf (cfg: unknown, method: string | string[], url: string): RouteRule {
    let rule = rules.get(cfg as object)
    if (rule === undefined) {
      try {
        rule = { ok: true, cfg: checkRouteConfig(cfg, `${String(method)} ${url}`) }
      } catch (error) {
        rule = { ok: false, error: error as Error }
      }
      rules.set(cfg as object, rule)
    }
    return rule
  }
  function checkRouteConfig (cfg: unknown, route: string): RouteCustomerDataConfig {
    const c = cfg as Partial<RouteCustomerDataConfig> | null
    if (typeof c !== 'object' || c === null || typeof c.kind !== 'string' || typeof c.id !== 'function' ||
        (c.replace !== undefined && typeof c.replace !== 'boolean') || (c.withdraw !== undefined && typeof c.withdraw !== 'boolean') ||
        (c.replace === true && c.withdraw === true)) {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION(`route ${route}: config.customerData must be { kind: string, id: (request) => string, replace?: boolean, withdraw?: boolean } (replace and withdraw exclude each other)`)
    }
    if (!engine.hasEraser(c.kind)) throw new FST_CUSTOMER_DATA_NO_ERASER(c.kind)
    return c as RouteCustomerDataConfig
  }
  fastify.addHook('onRoute', (route) => {
    const cfg = customerDataOf(route.config)
    if (cfg === undefined) return
    const rule = ruleOf(cfg, route.method, route.url)
    if (!rule.ok) throw rule.error
  })
  // Labeled routes this scope cannot see are refused, not left unlabeled.
  guardRoutesOutside(fastify)

  function routeRule (request: WithState): RouteRule | null {
    const known = request[kRouteRule]
    if (known !== null && known !== undefined) return known === false ? null : known
    const { config, url } = request.routeOptions
    const cfg = customerDataOf(config)
    const rule = cfg === undefined ? null : ruleOf(cfg, request.method, url ?? request.url)
    request[kRouteRule] = rule ?? false
    return rule
  }

  function resourceId (cfg: RouteCustomerDataConfig, request: FastifyRequest): string {
    const id = cfg.id(request as RouteCustomerDataRequest)
    if (typeof id !== 'string') throw new FST_CUSTOMER_DATA_INVALID_RESOURCE(`config.customerData.id of ${request.routeOptions.url ?? ''} must return a string`)
    // The id comes from the request (a name in the URL): one no store can hold is the client's mistake.
    if (!isValidResourceId(id)) throw new FST_CUSTOMER_DATA_BAD_REQUEST(`The resource name in this request is not valid: send 1 to ${MAX_RESOURCE_ID} characters, without NUL (%00).`)
    return id
  }

  // Global hooks (this plugin is not encapsulated): Fastify applies them to every route of the app,
  // whenever it was registered, which a route-level hook added in onRoute cannot promise.
  fastify.addHook('preHandler', async function labelBeforeHandler (request, reply) {
    const rule = routeRule(request)
    if (rule === null) return
    if (!rule.ok) {
      request.log.error({ err: rule.error }, 'route has an invalid config.customerData')
      return await sendWatsonError(reply, rule.error)
    }
    const { cfg } = rule
    ;(request as WithState)[kReached] = true
    if (cfg.withdraw === true) return // withdrawn after the handler succeeds
    if (request.customerIds.length === 0 && cfg.replace !== true) return
    // Hooks run again when a handler calls reply.callNotFound(): the route's lease is already taken.
    // (Undefined, not null, on requests of a context made before this plugin decorated them.)
    const taken = (request as WithState)[kRouteLease]
    if (taken !== null && taken !== undefined) return
    try {
      const lease = await request.customerData.label(cfg.kind, resourceId(cfg, request), { replace: cfg.replace === true })
      ;(request as WithState)[kRouteLease] = lease
      if ((request as { ws?: boolean }).ws === true) watchUpgrade(request, lease)
    } catch (err) {
      return await sendStoreAware(reply, err)
    }
  })

  fastify.addHook('onSend', async function finishAfterHandler (request, reply, payload) {
    const rule = routeRule(request)
    if (rule === null || !rule.ok) return payload
    ;(request as WithState)[kFinished] = true
    const failed = failedRoute(request, reply)
    if (failed) {
      await finishRoute(request, rule.cfg, true)
      return payload
    }
    try {
      await finishRoute(request, rule.cfg, false)
      return payload
    } catch (err) {
      return storeFailureBody(reply, err)
    }
  })

  /**
   * The route's work did not happen, or not as its config says: an error status; a reply answered
   * before the route's preHandler ran (its handler never ran: nothing to withdraw); a handler that
   * called reply.callNotFound(), whose answer, even a 2xx, is the 404 route's (the label is
   * released, never committed, and nothing is withdrawn).
   */
  function failedRoute (request: WithState, reply: FastifyReply): boolean {
    return reply.statusCode >= 400 || request[kReached] !== true || request.is404
  }

  /** Ends the route's work once it answered: withdraws after a success, or commits (releases after a failure) its label. */
  async function finishRoute (request: WithState, cfg: RouteCustomerDataConfig, failed: boolean): Promise<void> {
    if (cfg.withdraw === true) {
      if (!failed) await request.customerData.withdraw(cfg.kind, resourceId(cfg, request))
      return
    }
    const lease = request[kRouteLease]
    if (lease === null || lease === undefined || lease.ended) return
    await (failed ? lease.release() : lease.commit())
  }

  // A hijacked reply (the handler answers on reply.raw, e.g. a stream) runs no onSend: its label is
  // committed, or its resource withdrawn, once the response is out, so neither is left undone.
  fastify.addHook('onResponse', function finishHijacked (request, reply, done) {
    if ((request as WithState)[kFinished] === true || (request as { ws?: boolean }).ws === true) return done()
    const rule = routeRule(request)
    if (rule === null || !rule.ok) return done()
    finishRoute(request, rule.cfg, failedRoute(request, reply)).catch((err: unknown) => {
      // A doomed lease's commit has erased what the request stored: the deletion won, as it should.
      if (err instanceof FST_CUSTOMER_DATA_LEASE_DOOMED) request.log.info('customer data: a deletion doomed a hijacked reply\'s label; what it stored was erased')
      else request.log.warn({ err }, 'customer data: the label of a hijacked reply could not be finished')
    })
    done()
  })

  function storeFailureBody (reply: FastifyReply, err: unknown): string {
    const code = (err as { statusCode?: number }).statusCode
    // Doomed (409), no instance (401) and a bad resource name (400) say what happened; anything else is the store failing.
    const status = err instanceof FST_CUSTOMER_DATA_LEASE_DOOMED ? 409 : code !== undefined && code >= 400 && code < 500 ? code : 503
    reply.code(status).type('application/json; charset=utf-8')
    if (status === 503) reply.header('retry-after', RETRY_AFTER_SECONDS)
    return JSON.stringify(watsonErrorBody(status, (err as Error).message))
  }

  // WebSocket routes (@fastify/websocket runs no onSend for them): the label is committed when the
  // session closes normally and released (kept, expired, for any deletion) when it fails or never opens.
  const upgrades = new WeakMap<object, Lease>()
  // @fastify/websocket may be registered in any scope (each has its own server): the one that
  // serves this request is watched from its first labeled upgrade, before the session opens.
  const watched = new WeakSet<object>()
  function watchUpgrade (request: FastifyRequest, lease: Lease): void {
    const wss = (request.server as unknown as { websocketServer?: WebSocketServerLike }).websocketServer
    if (wss !== undefined && !watched.has(wss)) {
      watched.add(wss)
      wss.on('connection', (socket, raw) => {
        const leaseOf = upgrades.get(raw)
        if (leaseOf === undefined) return
        upgrades.delete(raw)
        socket.once('close', (code) => { endSession(leaseOf, NORMAL_CLOSE_CODES.has(code), fastify) })
      })
    }
    upgrades.set(request.raw, lease)
    request.raw.socket.once('close', () => {
      // The session's own close listener ran first when the upgrade completed.
      if (upgrades.get(request.raw) === lease) endSession(lease, false, request)
    })
  }
  function endSession (lease: Lease, normal: boolean, request: { log: FastifyBaseLogger }): void {
    if (lease.ended) return
    const ending = normal ? lease.commit() : lease.release()
    ending.catch((err: unknown) => {
      request.log.warn({ err }, normal ? 'customer data: the WebSocket session\'s label could not be committed' : 'customer data: the WebSocket session\'s label could not be released')
    })
  }
}

export const customerLabels = fp(plugin, {
  name: 'fastify-customer-data/customer-labels',
  fastify: '5.x',
  dependencies: ['fastify-customer-data/customer-metadata']
})
export default customerLabels
