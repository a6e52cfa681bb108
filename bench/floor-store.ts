// The floor of the plugin path, for the benchmark only: a store whose label and commit do nothing
// (nothing is kept, so nothing could be deleted). What a labeled request costs over bare Fastify
// with it is what the hooks, the lease, the customer digest and the API-key look-up cost, whatever
// the store; every other call goes to a memory store, so the plugins start and run as usual.
import { memoryStore, type LabelStore } from 'fastify-customer-data'

export function floorStore (): LabelStore {
  const inner = memoryStore()
  return new Proxy(inner, {
    get (target, key) {
      if (key === 'label') return async () => {}
      if (key === 'commit') return async () => ({ status: 'committed' })
      const value = Reflect.get(target, key) as unknown
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
}
