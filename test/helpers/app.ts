// A host application for tests: resources kept in a Map, erasers that delete from it.
import Fastify, { type FastifyInstance } from 'fastify'
import websocket from '@fastify/websocket'
import customerData, { apiKeyInstances, memoryStore, type CustomerDataOptions, type LabelStore } from '../../index.js'
import { watsonClientErrorHandler } from '../../lib/errors.js'

export const KEYS = { 'key-one': 'instance-1', 'key-two': 'instance-2' }
export const KINDS = ['recognition', 'job', 'corpus', 'word', 'audio'] as const

export function basic (key: string): string {
  return 'Basic ' + Buffer.from(`apikey:${key}`).toString('base64')
}

/** What the host has stored: `${instance}/${kind}/${id}` → content. */
export type HostStorage = Map<string, string>

export interface TestApp {
  app: FastifyInstance
  storage: HostStorage
  erased: string[]
  store: LabelStore
}

export async function buildApp ({ failErasers, ...options }: Partial<CustomerDataOptions> & { failErasers?: () => boolean } = {}): Promise<TestApp> {
  const storage: HostStorage = new Map()
  const erased: string[] = []
  const store = options.store ?? memoryStore()
  const erasers = Object.fromEntries(KINDS.map((kind) => [kind, async (ids: string[], { instance }: { instance: string }) => {
    if (failErasers?.() === true) throw new Error('storage backend unavailable')
    for (const id of ids) {
      storage.delete(`${instance}/${kind}/${id}`)
      erased.push(`${instance}/${kind}/${id}`)
    }
  }]))
  const app = Fastify({ clientErrorHandler: watsonClientErrorHandler })
  await app.register(websocket)
  await app.register(customerData, {
    instance: apiKeyInstances({ keys: KEYS }),
    erasers,
    reaperMs: 50,
    retryMinMs: 5,
    retryMaxMs: 40,
    waitMs: 2000,
    ...options,
    store
  })
  return { app, storage, erased, store }
}
