import { expect, test } from 'tstyche'
import Fastify, { type FastifyRequest } from 'fastify'
import customerData, { memoryStore, apiKeyInstances, type Lease, type DeletionRecord, RequestCustomerData, parseCustomerMetadata } from '../../index.js'

test('request decorators are typed', () => {
  const app = Fastify()
  app.register(customerData, { store: memoryStore(), erasers: { word: async () => {} }, instance: apiKeyInstances({ keys: { k: 'i' } }) })
  app.get('/', async (request) => {
    expect(request.customerIds).type.toBe<readonly string[]>()
    expect(request.customerData).type.toBe<RequestCustomerData>()
    expect(request.customerData.label('word', 'x')).type.toBe<Promise<Lease>>()
    expect(request.customerData.store('word', 'x', async (signal) => {
      expect(signal).type.toBe<AbortSignal>()
      return 1
    })).type.toBe<Promise<number>>()
    return null
  })
  expect(app.customerData.requestDeletion('i', 'c')).type.toBe<Promise<DeletionRecord>>()
})

test('route config and options are checked', () => {
  const app = Fastify()
  app.post('/x', { config: { customerData: { kind: 'word', id: (request: FastifyRequest) => String(request.id) } } }, async () => null)
  expect(app.post).type.not.toBeCallableWith('/x', { config: { customerData: { kind: 1 } } }, async () => null)
  expect(customerData).type.not.toBeCallableWith()
  expect(parseCustomerMetadata('customer_id=a')).type.toBe<string[]>()
  expect(parseCustomerMetadata).type.not.toBeCallableWith(42)
})
