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
    expect(request.customerData.label('word', 'x', { replace: true })).type.toBe<Promise<Lease>>()
    expect(request.customerData.withdraw('word', 'x')).type.toBe<Promise<number>>()
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
  // As the README writes it: params typed as URL strings, with or without route generics.
  app.put('/w/:word', { config: { customerData: { kind: 'word', id: (request) => request.params.word } } }, async () => null)
  app.put<{ Params: { word: string } }>('/v/:word', { config: { customerData: { kind: 'word', id: (request) => request.params.word, replace: true } } }, async (request) => request.params.word)
  app.delete('/w/:word', { config: { customerData: { kind: 'word', id: (request) => request.params.word, withdraw: true } } }, async () => null)
  expect(app.put).type.not.toBeCallableWith('/x', { config: { customerData: { kind: 'word', id: (request: FastifyRequest) => 42 } } }, async () => null)
  expect(app.post).type.not.toBeCallableWith('/x', { config: { customerData: { kind: 1 } } }, async () => null)
  expect(customerData).type.not.toBeCallableWith()
  expect(parseCustomerMetadata('customer_id=a')).type.toBe<string[]>()
  expect(parseCustomerMetadata).type.not.toBeCallableWith(42)
})
