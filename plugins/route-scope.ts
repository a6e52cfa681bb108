// Routes the plugin cannot see (docs/ARCHITECTURE.md, "Where labels are attached"). Registered
// inside an encapsulated plugin (one that adds a prefix, say), customerLabels' hooks reach that
// plugin's routes only, as Fastify's encapsulation says. A route elsewhere with config.customerData
// would then store its data unlabeled, without a word. So every app with the plugin gets one guard
// on its root: such a route stops the app at ready() when the root was shown it as it was added,
// and otherwise answers a 500 naming it, before its handler runs. Scopes are found by walking
// prototypes: Fastify makes each encapsulated context with Object.create(parent).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { FST_CUSTOMER_DATA_INVALID_OPTION } from '../lib/errors.js'
import { sendWatsonError } from './watson-reply.js'

/** The Fastify instance a context was made from, or null at the app's root. */
function parentOf (instance: object): object | null {
  const parent = Object.getPrototypeOf(instance) as Partial<FastifyInstance> | null
  return parent !== null && typeof parent.addHook === 'function' && typeof parent.decorateRequest === 'function' ? parent : null
}

function rootOf (instance: object): FastifyInstance {
  let root = instance
  for (let up = parentOf(root); up !== null; up = parentOf(root)) root = up
  return root as FastifyInstance
}

/** Per app (by its root instance): the scopes customerLabels is registered in, and what each context was found to be. */
interface AppScopes { served: Set<object>, within: WeakMap<object, boolean> }
const appsByRoot = new WeakMap<object, AppScopes>()

/** Why a second registration is refused (customerMetadata finds it first, customerLabels otherwise). */
export const REGISTERED_TWICE = 'fastify-customer-data is registered twice where one registration contains the other: register it once per scope (two sibling plugins may each register it)'

function outOfScope (route: string): Error {
  return new FST_CUSTOMER_DATA_INVALID_OPTION(`route ${route} has config.customerData, but fastify-customer-data is registered in an encapsulated plugin that does not contain it, so nothing would label it: register the plugin at the app's root (routePrefix sets where its own routes go) or in a plugin that contains this route`)
}

/** True when `outer` is `inner` or one of the contexts `inner` was made from. */
function contains (outer: object, inner: object): boolean {
  for (let at: object | null = inner; at !== null; at = parentOf(at)) if (at === outer) return true
  return false
}

/** A route config's `customerData`, or undefined (the one place the hooks read it from a config). */
export function customerDataOf (config: unknown): unknown {
  return (config as { customerData?: unknown } | undefined)?.customerData
}

/**
 * Records `scope` as served by the plugin; the first one of an app installs the app's guard.
 * Throws when the scope overlaps one already served: two registrations would both label its routes.
 */
export function guardRoutesOutside (scope: FastifyInstance): void {
  const root = rootOf(scope)
  const known = appsByRoot.get(root)
  if (known !== undefined) {
    for (const other of known.served) {
      if (contains(scope, other) || contains(other, scope)) {
        throw new FST_CUSTOMER_DATA_INVALID_OPTION(REGISTERED_TWICE)
      }
    }
    known.served.add(scope)
    known.within = new WeakMap() // what was found before may have changed
    return
  }
  const app: AppScopes = { served: new Set([scope]), within: new WeakMap() }
  appsByRoot.set(root, app)
  function isServed (instance: object): boolean {
    let found = app.within.get(instance)
    if (found === undefined) {
      found = [...app.served].some((scope) => contains(scope, instance))
      app.within.set(instance, found)
    }
    return found
  }
  if (scope === root) return // the root serves every route
  // Routes the root is shown as they are added are judged once every registration is known: a
  // later sibling may register the plugin after declaring its routes.
  const seen: Array<{ context: object, route: string }> = []
  root.addHook('onRoute', function noteLabeledRoute (this: FastifyInstance, route) {
    if (customerDataOf(route.config) !== undefined) seen.push({ context: this, route: `${String(route.method)} ${route.url}` })
  })
  root.addHook('onReady', async function refuseOutOfScopeRoutes () {
    const outside = seen.find(({ context }) => !isServed(context))
    seen.length = 0
    if (outside !== undefined) throw outOfScope(outside.route)
  })
  root.addHook('preHandler', function refuseOutOfScope (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
    if (isServed(request.server)) return done()
    const { config, url } = request.routeOptions
    if (customerDataOf(config) === undefined) return done()
    request.log.error('route has config.customerData outside the scope fastify-customer-data is registered in')
    sendWatsonError(reply, outOfScope(`${request.method} ${url ?? request.url}`))
  })
}
