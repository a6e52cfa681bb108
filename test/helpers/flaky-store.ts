// A real store whose chosen methods fail like an unreachable database while `down` is set.
import type { LabelStore } from '../../index.js'

export interface FlakyStore {
  store: LabelStore
  down: boolean
}

/** Wraps `store`; while `flaky.down`, every method `fails(name)` picks rejects with a driver-like error. */
export function flakyStore (store: LabelStore, fails: (method: string) => boolean): FlakyStore {
  const flaky: FlakyStore = {
    down: false,
    store: new Proxy(store, {
      get (target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver)
        if (typeof value !== 'function') return value
        return (...args: unknown[]) => flaky.down && fails(String(prop))
          ? Promise.reject(new Error('connection refused'))
          : value.apply(target, args)
      }
    })
  }
  return flaky
}
