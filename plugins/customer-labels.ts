// Labels, erasers, leases and the deletion engine, wired into Fastify (DESIGN.md §4–§6).
import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyRequest, onSendHookHandler, preHandlerAsyncHookHandler } from 'fastify'
import {
  FST_CUSTOMER_DATA_INVALID_OPTION, FST_CUSTOMER_DATA_INVALID_RESOURCE, FST_CUSTOMER_DATA_LEASE_DOOMED,
  FST_CUSTOMER_DATA_NO_ERASER, FST_CUSTOMER_DATA_UNAUTHORIZED, watsonErrorBody
} from '../lib/errors.js'
import { CustomerDataEngine, type EngineOptions } from '../lib/engine.js'
import type { Lease } from '../lib/lease.js'
import type { DeletionRecord, ExportPage, LabelStore } from '../lib/store.js'
import { sqliteStore } from '../lib/stores/sqlite.js'
import { sendStoreAware } from './watson-reply.js'
import type { DeletionEventMap, DeletionEventName } from '../lib/deletion-events.js'
import { deletionOverview, listDeletionOverviews, type DeletionOverview, type DeletionOverviewPage, type ListDeletionOverviewsOptions } from '../lib/deletion-overview.js'

export type RequestInstanceResolver = (request: FastifyRequest) => string | null | Promise<string | null>

export interface CustomerLabelsOptions extends Omit<EngineOptions, 'logger' | 'store'> {
  /** Where labels and deletion records live. Default: sqliteStore({ path: './customer-data.db' }). */
  store?: LabelStore
  /** Required: the service instance a request's credentials belong to, or null (→ 401). */
  instance: RequestInstanceResolver
  /** How long DELETE /v1/user_data waits for completion before answering 202. Default 5000 ms. */
  waitMs?: number
}

export interface RouteCustomerDataConfig {
  kind: string
  /** The id of the resource the route stores. */
  id: (request: FastifyRequest) => string
}

/** What the host can do outside a request: label for background jobs, delete, export. */
export interface CustomerDataApi {
  readonly engine: CustomerDataEngine
  readonly waitMs: number
  resolveInstance(request: FastifyRequest): Promise<string | null>
  label(instance: string, customerIds: readonly string[], kind: string, id: string): Promise<Lease>
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
  async label (kind: string, id: string): Promise<Lease> {
    const customerIds = this.#request.customerIds ?? []
    const instance = customerIds.length === 0 ? '' : await this.instance()
    return await this.#api.label(instance, customerIds, kind, id)
  }

  /** label → fn(signal) → commit; on failure the label stays (pending) and the error is rethrown. */
  async store<T> (kind: string, id: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const lease = await this.label(kind, id)
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
const DEFAULT_WAIT_MS = 5000
export const DEFAULT_SQLITE_PATH = 'customer-data.db'
const MAX_EXPORT_LIMIT = 1000

type WithState = FastifyRequest & { [kRequestData]?: RequestCustomerData, [kRouteLease]?: Lease }

const plugin: FastifyPluginAsync<CustomerLabelsOptions> = async (fastify, options) => {
  if (typeof options.instance !== 'function') {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('instance is required: pass (request) => instanceId | null, for example apiKeyInstances({ keys: { [apiKey]: instanceId } })')
  }
  const waitMs = options.waitMs ?? DEFAULT_WAIT_MS
  if (!Number.isFinite(waitMs) || waitMs < 0) throw new FST_CUSTOMER_DATA_INVALID_OPTION('waitMs must be a number of milliseconds ≥ 0')
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
    label: (instance, customerIds, kind, id) => engine.label(instance, customerIds, kind, id),
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

  fastify.addHook('onRoute', (route) => {
    const cfg = (route.config as { customerData?: RouteCustomerDataConfig } | undefined)?.customerData
    if (cfg === undefined) return
    if (typeof cfg !== 'object' || cfg === null || typeof cfg.kind !== 'string' || typeof cfg.id !== 'function') {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION(`route ${route.method} ${route.url}: config.customerData must be { kind: string, id: (request) => string }`)
    }
    if (!engine.hasEraser(cfg.kind)) throw new FST_CUSTOMER_DATA_NO_ERASER(cfg.kind)

    const labelBeforeHandler: preHandlerAsyncHookHandler = async function (request, reply) {
      if (request.customerIds === null || request.customerIds.length === 0) return
      try {
        const id = cfg.id(request)
        if (typeof id !== 'string') throw new FST_CUSTOMER_DATA_INVALID_RESOURCE(`config.customerData.id of ${route.url} must return a string`)
        ;(request as WithState)[kRouteLease] = await request.customerData.label(cfg.kind, id)
      } catch (err) {
        return sendStoreAware(reply, err)
      }
    }
    const commitAfterHandler: onSendHookHandler = async function (request, reply, payload) {
      const lease = (request as WithState)[kRouteLease]
      if (lease === undefined || lease.ended) return payload
      if (reply.statusCode >= 400) {
        await lease.release()
        return payload
      }
      try {
        await lease.commit()
        return payload
      } catch (err) {
        const status = err instanceof FST_CUSTOMER_DATA_LEASE_DOOMED ? 409 : 503
        reply.code(status).type('application/json; charset=utf-8')
        if (status === 503) reply.header('retry-after', '5')
        return JSON.stringify(watsonErrorBody(status, (err as Error).message))
      }
    }
    route.preHandler = [...asArray(route.preHandler), labelBeforeHandler] as never
    route.onSend = [...asArray(route.onSend), commitAfterHandler] as never
  })
}

function asArray<T> (value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value]
}

export const customerLabels = fp(plugin, { name: 'fastify-customer-data/customer-labels', fastify: '5.x' })
export default customerLabels
