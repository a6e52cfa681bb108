// Prometheus metrics, scraped from GET /metrics around a real deletion (prom-client, real socket).
import { test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { Counter, Registry, register as globalRegister } from 'prom-client'
import customerData, { apiKeyInstances, customerDataMetrics, errors, memoryStore } from '../index.js'
import { basic, buildApp } from './helpers/app.js'

const H1 = { authorization: basic('key-one') }

/** Value of one sample in a Prometheus text scrape, or undefined when absent. */
function sample (text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(labels === '' ? name + ' ' : `${name}{${labels}} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

async function until (fn: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await fn()) return
    await sleep(20)
  }
  throw new Error('timed out waiting for ' + what)
}

test('counters and gauges move around a deletion, scraped from /metrics', async (t) => {
  const registry = new Registry()
  let failing = true
  const erasers = {
    audio: async () => {},
    job: async () => { if (failing) throw new Error('job archive is read-only') }
  }
  const { app } = await buildApp({ erasers, waitMs: 100, retryMinMs: 30, retryMaxMs: 60, metrics: { registry, path: '/metrics' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const scrape = async (): Promise<string> => {
    const res = await fetch(`${base}/metrics`)
    t.equal(res.status, 200)
    t.match(res.headers.get('content-type'), /text\/plain/)
    return await res.text()
  }

  const before = await scrape()
  t.equal(sample(before, 'customer_data_deletions_running'), 0)
  t.equal(sample(before, 'customer_data_oldest_running_deletion_age_seconds'), 0)
  t.equal(sample(before, 'customer_data_deletions_total', 'outcome="recorded"'), 0)
  t.equal(sample(before, 'customer_data_leases_doomed_total'), 0)

  await (await app.customerData.label('instance-1', ['alice', 'bob'], 'audio', 'a1')).commit()
  await (await app.customerData.label('instance-1', ['alice'], 'job', 'j1')).commit()
  const live = await app.customerData.label('instance-1', ['alice'], 'audio', 'a2')
  const del = await app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=alice', headers: H1 })
  t.equal(del.statusCode, 202, 'stuck on the failing job eraser')
  t.equal((await app.inject({ method: 'DELETE', url: '/v1/user_data?customer_id=alice', headers: H1 })).statusCode, 202)
  await until(async () => (sample(await scrape(), 'customer_data_eraser_failures_total', 'kind="job"') ?? 0) >= 2, 'eraser failures')

  const during = await scrape()
  t.equal(sample(during, 'customer_data_labels_written_total', 'kind="audio"'), 3, 'a label per customer')
  t.equal(sample(during, 'customer_data_labels_written_total', 'kind="job"'), 1)
  t.equal(sample(during, 'customer_data_leases_doomed_total'), 1, 'the live writer was doomed')
  t.equal(sample(during, 'customer_data_deletions_total', 'outcome="recorded"'), 1)
  t.equal(sample(during, 'customer_data_deletions_total', 'outcome="joined"'), 1, 'the repeated DELETE joined it')
  t.equal(sample(during, 'customer_data_deletions_total', 'outcome="completed"'), 0)
  t.equal(sample(during, 'customer_data_deletions_running'), 1)
  t.ok((sample(during, 'customer_data_oldest_running_deletion_age_seconds') ?? 0) > 0, 'the stuck deletion ages')
  t.notOk(during.includes('alice') || during.includes('bob'), 'no customer ID in any metric')
  t.notOk(during.includes('instance-1'), 'no instance label either')

  failing = false
  await t.rejects(live.commit())
  await until(async () => sample(await scrape(), 'customer_data_deletions_total', 'outcome="completed"') === 1, 'completion')
  const after = await scrape()
  t.equal(sample(after, 'customer_data_resources_erased_total', 'kind="audio"'), 1, 'erased by a batch (the writer erased its own)')
  t.equal(sample(after, 'customer_data_resources_erased_total', 'kind="job"'), 1)
  t.equal(sample(after, 'customer_data_deletions_running'), 0)
  t.equal(sample(after, 'customer_data_oldest_running_deletion_age_seconds'), 0)
  t.equal(sample(after, 'customer_data_deletion_duration_seconds_count'), 1)
  t.ok((sample(after, 'customer_data_deletion_duration_seconds_sum') ?? 0) > 0)
})

test("the default is prom-client's global registry, shared with the host's own metrics; closing removes ours", async (t) => {
  const hostMetric = new Counter({ name: 'host_requests_total', help: 'the host app', registers: [globalRegister] })
  t.teardown(() => { globalRegister.removeSingleMetric('host_requests_total') })
  hostMetric.inc(7)
  const app = Fastify()
  await app.register(customerData, {
    instance: apiKeyInstances({ keys: { k: 'i' } }),
    erasers: { audio: async () => {} },
    store: memoryStore(),
    metrics: { path: '/metrics' }
  })
  const text = (await app.inject({ url: '/metrics' })).body
  t.equal(sample(text, 'host_requests_total'), 7, 'the host metric is served beside ours')
  t.equal(sample(text, 'customer_data_deletions_running'), 0)
  t.ok(globalRegister.getSingleMetric('customer_data_deletions_total') !== undefined)
  await app.close()
  t.equal(globalRegister.getSingleMetric('customer_data_deletions_total'), undefined, 'gone after close')
})

test('metrics options are checked at register', async (t) => {
  const registry = new Registry()
  const one = (await buildApp({ metrics: { registry } })).app
  t.teardown(() => one.close())
  t.equal((await one.inject({ url: '/metrics' })).statusCode, 404, 'no route unless a path is given')
  await t.rejects(buildAppUnready({ registry }).ready(), errors.FST_CUSTOMER_DATA_INVALID_OPTION, 'one registry, one app (or a prefix)')
  const prefixed = await buildApp({ metrics: { registry, prefix: 'second_' } })
  t.teardown(() => prefixed.app.close())
  t.ok(registry.getSingleMetric('second_deletions_total') !== undefined)
  for (const bad of [{ prefix: 'has space' }, { path: 'metrics' }, { registry: {} as Registry }]) {
    await t.rejects(buildAppUnready(bad).ready(), errors.FST_CUSTOMER_DATA_INVALID_OPTION, JSON.stringify(bad))
  }
})

/** Not async: a Fastify instance is thenable, so awaiting it would start it. */
function buildAppUnready (metrics: Record<string, unknown>): ReturnType<typeof Fastify> {
  const app = Fastify()
  app.register(customerData, { instance: () => 'i', erasers: { audio: async () => {} }, store: memoryStore(), routes: false })
  app.register(customerDataMetrics, metrics)
  return app
}
