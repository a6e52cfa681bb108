// Fills a store with synthetic labels (committed), as fast as the store's group commit allows.
import { randomUUID } from 'node:crypto'
import type { LabelStore } from 'fastify-customer-data'

/**
 * Labels `customers × perCustomer` resources; returns labels per second. `maintenance` runs every
 * 100,000 labels (PostgreSQL: what autovacuum would do, on a server where it is off).
 */
export async function loadLabels (store: LabelStore, digest: (id: string) => string, customers: number, perCustomer: number, prefix: string,
  maintenance?: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint()
  const now = Date.now()
  const inFlight: Array<Promise<void>> = []
  for (let c = 0; c < customers; c++) {
    const customer = digest(`${prefix}${c}`)
    for (let r = 0; r < perCustomer; r++) {
      const leaseId = randomUUID()
      inFlight.push(store.label([{ leaseId, instance: 'bench', customers: [customer], kind: 'item', id: `${c}-${r}`, now, expiresAt: now + 60_000 }])
        .then(() => store.commit(leaseId, now)).then(() => {}))
      if (inFlight.length >= 2000) await Promise.all(inFlight.splice(0))
      if (maintenance !== undefined && (c * perCustomer + r + 1) % 100_000 === 0) {
        await Promise.all(inFlight.splice(0))
        await maintenance()
      }
    }
  }
  await Promise.all(inFlight)
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  return (customers * perCustomer) / seconds
}
