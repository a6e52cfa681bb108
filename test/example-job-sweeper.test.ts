// Jobs past results_ttl lose their audio, results and labels on the sweeper's timer, without
// anyone asking for them.
import { test } from 'tap'
import { join } from 'node:path'
import { sqliteDocuments } from '../examples/storage/sqlite-documents.js'
import { AUTH, startExample, storedFiles, until } from './helpers/example.js'
import { wav } from './helpers/audio.js'

test('an expired job nobody reads is removed by the sweeper: audio, results and label', async (t) => {
  const { base, dataDir } = await startExample(t, { sweepMs: 100 })
  const created = await (await fetch(`${base}/v1/recognitions?results_ttl=1`, { method: 'POST', headers: { ...AUTH, 'content-type': 'audio/wav', 'x-watson-metadata': 'customer_id=late' }, body: wav(0.2) })).json() as { id: string }
  const kept = await (await fetch(`${base}/v1/recognitions`, { method: 'POST', headers: { ...AUTH, 'content-type': 'audio/wav' }, body: wav(0.2) })).json() as { id: string }
  await until(() => storedFiles(dataDir).length === 2)
  for (const id of [created.id, kept.id]) {
    for (let i = 0; i < 100; i++) {
      const job = await (await fetch(`${base}/v1/recognitions/${id}`, { headers: AUTH })).json() as { status: string }
      if (job.status === 'completed') break
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  // A minute is the shortest results_ttl: move this job's expiry into the past instead of waiting.
  const docs = sqliteDocuments(join(dataDir, 'documents.db'))
  t.teardown(() => docs.close())
  const job = await docs.get('inst', 'job', created.id) as Record<string, unknown>
  await docs.put('inst', 'job', created.id, { ...job, expires_at: Date.now() - 1 })
  await docs.put('', 'job-expiry', `inst/${created.id}`, { instance: 'inst', id: created.id, expires_at: Date.now() - 1 })

  await until(() => storedFiles(dataDir).length === 1)
  t.equal(storedFiles(dataDir).length, 1, "the expired job's audio is gone; the other job's stays")
  t.equal(await docs.get('inst', 'job', created.id), null, 'its results are gone')
  t.equal((await fetch(`${base}/v1/recognitions/${kept.id}`, { headers: AUTH })).status, 200, 'the unexpired job is untouched')
  const exported = await (await fetch(`${base}/v1/user_data?customer_id=late`, { headers: AUTH })).json() as { resources: unknown[] }
  t.same(exported.resources, [], 'and its label is withdrawn')
})
