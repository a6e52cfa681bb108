// Lease ids are UUIDv7 (RFC 9562): a millisecond timestamp first, random bits after. Stores index
// labels by lease id; random (v4) ids put every new label on a random page of that index, so a
// group transaction dirtied one page per label. Time-ordered ids land on the index's last pages.
import { randomUUID } from 'node:crypto'

export function leaseId (now = Date.now()): string {
  const time = now.toString(16).padStart(12, '0')
  const random = randomUUID() // version nibble at index 14, variant bits kept from index 19
  return `${time.slice(0, 8)}-${time.slice(8, 12)}-7${random.slice(15)}`
}
