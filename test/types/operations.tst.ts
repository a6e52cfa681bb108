import { expect, test } from 'tstyche'
import Fastify from 'fastify'
import customerData, { memoryStore, type DeletionOverviewPage, type EraserFailedEvent, type LabelsWrittenEvent } from '../../index.js'

test('events, the deletion list and the operations options are typed', () => {
  const app = Fastify()
  app.register(customerData, {
    store: memoryStore(),
    erasers: { word: async () => {} },
    instance: () => 'i',
    metrics: { path: '/metrics', prefix: 'stt_' },
    console: { prefix: '/console' }
  })
  app.customerData.on('eraser-failed', (event) => { expect(event).type.toBe<EraserFailedEvent>() })
  app.customerData.on('labels-written', (event) => { expect(event).type.toBe<LabelsWrittenEvent>() })
  expect(app.customerData.on).type.not.toBeCallableWith('no-such-event', () => {})
  expect(app.customerData.listDeletions('i', { status: 'running', limit: 10, cursor: null })).type.toBe<Promise<DeletionOverviewPage>>()
  expect(app.customerData.listDeletions).type.not.toBeCallableWith('i', { status: 'stuck', limit: 10, cursor: null })
  expect(customerData).type.not.toBeCallableWith(app, { store: memoryStore(), erasers: {}, instance: () => 'i', console: {} })
})
