// Asynchronous recognition (WATSON-WIRE.md, Async callbacks): register_callback with its challenge,
// and /v1/recognitions jobs that hold their lease open while they run.
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { errors, type Lease } from 'fastify-customer-data'
import { answersChallenge, callbackUrl, postNotification } from '../callback-client.js'
import { scheduleExpiry } from '../job-sweeper.js'
import { HttpError, bodyOf, contentTypeOf, instanceOf, notFound, nowIso, type Host } from '../http.js'
import { UnsupportedAudio } from '../recognizer.js'

const EVENTS = ['recognitions.started', 'recognitions.completed', 'recognitions.completed_with_results', 'recognitions.failed']
const DEFAULT_TTL_MINUTES = 10080
/** A notification is tried this many times, 200 ms apart and doubling, then given up. */
const NOTIFY_ATTEMPTS = 3

interface Job {
  id: string
  created: string
  updated: string
  status: 'waiting' | 'processing' | 'completed' | 'failed'
  url: string
  user_token?: string
  callback_url?: string
  events: string[]
  expires_at: number
  content_type: string
  results?: unknown[]
  warnings?: string[]
}

function baseUrl (request: FastifyRequest): string {
  const prefix = request.url.slice(0, request.url.indexOf('/v1/'))
  return `${request.protocol}://${request.host}${prefix}`
}

function publicJob (job: Job, withResults: boolean): Record<string, unknown> {
  const { expires_at: _e, content_type: _c, callback_url: _u, events: _v, results, ...rest } = job
  return withResults && results !== undefined ? { ...rest, results } : rest
}

export function jobRoutes (app: FastifyInstance, host: Host): void {
  const { docs, files } = host

  const registered = (request: FastifyRequest): string => callbackUrl((request.query as Record<string, unknown>).callback_url)

  app.post('/v1/register_callback', { config: { customerData: { kind: 'callback', id: registered } } }, async (request, reply) => {
    const instance = instanceOf(request)
    const url = registered(request)
    const secret = (request.query as Record<string, string | undefined>).user_secret
    if (await docs.get(instance, 'callback', url) !== null) return reply.code(200).send({ status: 'already created', url })
    if (!await answersChallenge(url, secret)) {
      throw new HttpError(400, 'The callback URL did not echo the challenge_string within 5 seconds; make it answer GET ?challenge_string=… with that string as text/plain (a 2xx, not a redirect).')
    }
    await docs.put(instance, 'callback', url, { url, user_secret: secret })
    return reply.code(201).send({ status: 'created', url })
  })

  app.post('/v1/unregister_callback', { config: { customerData: { kind: 'callback', id: registered, withdraw: true } } }, async (request, reply) => {
    const instance = instanceOf(request)
    const url = registered(request)
    if (await docs.get(instance, 'callback', url) === null) throw notFound('The callback URL')
    await docs.delete(instance, 'callback', [url])
    return reply.code(200).send()
  })

  app.post('/v1/recognitions', async (request, reply) => {
    const instance = instanceOf(request)
    const query = request.query as Record<string, string | undefined>
    let callback: { url: string, user_secret?: string } | undefined
    if (query.callback_url !== undefined) {
      const url = callbackUrl(query.callback_url)
      callback = await docs.get(instance, 'callback', url) as typeof callback ?? undefined
      if (callback === undefined) throw new HttpError(400, 'callback_url is not registered: call register_callback first.')
    }
    const events = query.events === undefined ? [] : query.events.split(',').map((e) => e.trim())
    for (const e of events) if (!EVENTS.includes(e)) throw new HttpError(400, `Unknown event "${e}"; use ${EVENTS.join(', ')}.`)
    if (events.includes('recognitions.completed') && events.includes('recognitions.completed_with_results')) {
      throw new HttpError(400, 'Ask for recognitions.completed or recognitions.completed_with_results, not both.')
    }
    const ttl = query.results_ttl === undefined ? DEFAULT_TTL_MINUTES : Number(query.results_ttl)
    if (!Number.isInteger(ttl) || ttl < 1) throw new HttpError(400, 'results_ttl must be a whole number of minutes ≥ 1.')
    const id = randomBytes(16).toString('hex')
    const lease = await request.customerData.label('job', id)
    let bytes: number
    try {
      bytes = await files.write(instance, 'job', id, bodyOf(request), host.limits.jobBytes)
    } catch (err) {
      await lease.cancel() // nothing was kept
      throw err
    }
    if (bytes === 0) {
      await files.remove(instance, 'job', [id])
      await lease.cancel()
      throw new HttpError(400, 'No audio was sent: send the audio as the request body.')
    }
    const now = nowIso()
    const job: Job = {
      id,
      created: now,
      updated: now,
      status: 'waiting',
      url: `${baseUrl(request)}/v1/recognitions/${id}`,
      ...(query.user_token !== undefined ? { user_token: query.user_token } : {}),
      ...(callback !== undefined ? { callback_url: callback.url } : {}),
      events: callback === undefined ? [] : (events.length > 0 ? events : ['recognitions.started', 'recognitions.completed', 'recognitions.failed']),
      expires_at: Date.now() + ttl * 60_000,
      content_type: contentTypeOf(request)
    }
    await docs.put(instance, 'job', id, job as never)
    await scheduleExpiry(host, instance, id, job.expires_at)
    setImmediate(() => { runJob(host, instance, job, lease, callback?.user_secret, request.log).catch(() => {}) })
    return reply.code(201).send({ id, created: job.created, url: job.url, status: job.status, ...(job.user_token !== undefined ? { user_token: job.user_token } : {}) })
  })

  async function liveJob (instance: string, id: string): Promise<Job> {
    const job = await docs.get(instance, 'job', id) as Job | null
    if (job === null) throw notFound('The recognition job')
    if (job.expires_at <= Date.now()) throw notFound('The recognition job') // results_ttl passed: the sweeper removes it
    return job
  }

  app.get('/v1/recognitions', async (request) => {
    const instance = instanceOf(request)
    const jobs = await docs.list(instance, 'job') as unknown as Job[]
    return { recognitions: jobs.filter((j) => j.expires_at > Date.now()).map((j) => publicJob(j, false)) }
  })

  app.get('/v1/recognitions/:id', async (request) => {
    const job = await liveJob(instanceOf(request), (request.params as { id: string }).id)
    return publicJob(job, true)
  })

  app.delete('/v1/recognitions/:id', { config: { customerData: { kind: 'job', id: (request) => (request.params as { id: string }).id, withdraw: true } } }, async (request, reply) => {
    const instance = instanceOf(request)
    const job = await liveJob(instance, (request.params as { id: string }).id)
    await docs.delete(instance, 'job', [job.id])
    await files.remove(instance, 'job', [job.id])
    return reply.code(204).send()
  })
}

async function notify (job: Job, event: string, secret: string | undefined, withResults: boolean): Promise<void> {
  if (job.callback_url === undefined || !job.events.includes(event)) return
  const body = JSON.stringify({ id: job.id, event, user_token: job.user_token ?? null, ...(withResults ? { results: job.results } : {}) })
  for (let attempt = 0; attempt < NOTIFY_ATTEMPTS; attempt++) {
    if (await postNotification(job.callback_url, body, secret)) return
    await sleep(200 * 2 ** attempt)
  }
}

/** Runs a job under its lease; a deletion of its customer aborts it and erases what it stored. */
async function runJob (host: Host, instance: string, job: Job, lease: Lease, secret: string | undefined, log: FastifyRequest['log']): Promise<void> {
  lease.keepAlive()
  const save = async (patch: Partial<Job>): Promise<void> => {
    Object.assign(job, patch, { updated: nowIso() })
    if (!lease.signal.aborted) await host.docs.put(instance, 'job', job.id, job as never)
  }
  try {
    await save({ status: 'processing' })
    await notify(job, 'recognitions.started', secret, false)
    try {
      const audio = await host.files.open(instance, 'job', job.id)
      if (audio === null) throw new Error('The job audio is gone.')
      const result = await host.recognizer.recognize(audio, job.content_type, lease.signal)
      await save({ status: 'completed', results: [result] })
    } catch (err) {
      await save({ status: 'failed', warnings: [err instanceof UnsupportedAudio ? err.message : 'The recognition failed.'] })
    }
    await lease.commit()
    if (job.status === 'completed') {
      const withResults = job.events.includes('recognitions.completed_with_results')
      await notify(job, withResults ? 'recognitions.completed_with_results' : 'recognitions.completed', secret, withResults)
    } else {
      await notify(job, 'recognitions.failed', secret, false)
    }
  } catch (err) {
    if (!lease.ended) await lease.commit().catch(() => {})
    if (!(err instanceof errors.FST_CUSTOMER_DATA_LEASE_DOOMED)) log.warn({ err, jobId: job.id }, 'recognition job failed')
  }
}
