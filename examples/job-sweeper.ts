// Jobs past their results_ttl lose their audio and results on a timer, not only when someone asks
// for them: an expired job nobody reads must not keep a customer's audio (README, "Example server").
import type { FastifyInstance } from 'fastify'
import type { Host } from './http.js'

/**
 * The sweeper's index of expiries lives in the document store under the empty instance, which no
 * credentials resolve to. It holds instance and job ids only, never customer data.
 */
const INDEX_INSTANCE = ''
const INDEX_KIND = 'job-expiry'

interface Expiry { instance: string, id: string, expires_at: number }

export async function scheduleExpiry (host: Host, instance: string, id: string, expiresAt: number): Promise<void> {
  await host.docs.put(INDEX_INSTANCE, INDEX_KIND, `${instance}/${id}`, { instance, id, expires_at: expiresAt })
}

/** Removes every job whose results_ttl has passed (document, audio, labels); returns how many. */
export async function sweepExpiredJobs (app: FastifyInstance, host: Host, now = Date.now()): Promise<number> {
  const due = (await host.docs.list(INDEX_INSTANCE, INDEX_KIND) as unknown as Expiry[]).filter((e) => e.expires_at <= now)
  for (const { instance, id } of due) {
    await host.docs.delete(instance, 'job', [id])
    await host.files.remove(instance, 'job', [id])
    await app.customerData.withdraw(instance, 'job', id) // gone: a later job with this id is not this customer's
    await host.docs.delete(INDEX_INSTANCE, INDEX_KIND, [`${instance}/${id}`])
  }
  return due.length
}

/** Sweeps every `limits.sweepMs`; the timer does not hold the process open and stops when the app closes. */
export function startJobSweeper (app: FastifyInstance, host: Host): void {
  let running = false
  const timer = setInterval(() => {
    if (running) return
    running = true
    sweepExpiredJobs(app, host)
      .catch((err: unknown) => { app.log.warn({ err }, 'expired job sweep failed; the next one retries') })
      .finally(() => { running = false })
  }, host.limits.sweepMs)
  timer.unref()
  app.addHook('onClose', async () => { clearInterval(timer) })
}
