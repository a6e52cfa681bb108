// The app these plugins serve is the whole app, wherever they are registered (docs/ARCHITECTURE.md,
// "Where labels are attached"). Registered inside an encapsulated plugin (say, one that adds a
// prefix), their hooks would reach only that plugin's routes, and a route outside it with
// config.customerData would store data unlabeled without a word. So hooks and request decorators go
// on the root instance: Fastify makes each encapsulated context with Object.create(parent), and hooks
// added to the root reach every route of the app, whenever it was registered.
import type { FastifyInstance } from 'fastify'

export function appRoot (fastify: FastifyInstance): FastifyInstance {
  let root = fastify
  for (;;) {
    const parent = Object.getPrototypeOf(root) as Partial<FastifyInstance> | null
    if (parent === null || typeof parent.addHook !== 'function' || typeof parent.decorateRequest !== 'function') return root
    root = parent as FastifyInstance
  }
}
