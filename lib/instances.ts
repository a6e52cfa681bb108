// Service instances (docs/ARCHITECTURE.md, "Instances"). The Watson convention: an API key, sent as Basic
// `apikey:<key>` or `Bearer <key>`, belongs to one instance. Keys are kept only as SHA-256 hashes
// and compared in constant time.
import * as crypto from 'node:crypto'
import { FST_CUSTOMER_DATA_INVALID_OPTION } from './errors.js'

/** What an instance resolver sees of a request: enough for HTTP and WebSocket upgrades. */
export interface InstanceRequest {
  headers: Record<string, string | string[] | undefined>
  /** The raw request URL, for WebSocket upgrades that carry tokens in the query. */
  url?: string
}

export type InstanceResolver = (request: InstanceRequest) => string | null | Promise<string | null>

export interface ApiKeyInstancesOptions {
  /** API key → instance id. */
  keys: Record<string, string>
  /**
   * Also accept `access_token` / `watson-token` query parameters on WebSocket upgrades, as the
   * Watson SDK sends a bearer token there. Default true.
   */
  queryTokens?: boolean
}

const MAX_CREDENTIAL = 4096

/** SHA-256 of a key. The one-shot `crypto.hash` (Node ≥ 20.12) makes no Hash object (2.2 against 3.4–4.3 µs a key, in a loop here). */
const hash: (key: string) => Buffer = typeof crypto.hash === 'function'
  ? (key) => crypto.hash('sha256', key, 'buffer')
  : (key) => crypto.createHash('sha256').update(key, 'utf8').digest()

export function apiKeyInstances (options: ApiKeyInstancesOptions): InstanceResolver {
  if (options === null || typeof options !== 'object' || options.keys === null || typeof options.keys !== 'object') {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('apiKeyInstances needs { keys: { [apiKey]: instanceId } }')
  }
  const table = Object.entries(options.keys).map(([key, instance]) => {
    if (typeof key !== 'string' || key.length === 0 || typeof instance !== 'string' || instance.length === 0) {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION('apiKeyInstances keys must map non-empty API keys to non-empty instance ids')
    }
    return { digest: hash(key), instance }
  })
  if (table.length === 0) throw new FST_CUSTOMER_DATA_INVALID_OPTION('apiKeyInstances needs at least one key')
  const queryTokens = options.queryTokens ?? true

  function lookup (key: string | null): string | null {
    if (key === null || key.length === 0 || key.length > MAX_CREDENTIAL) return null
    const digest = hash(key)
    let found: string | null = null
    // Every entry is compared, so timing does not tell which key (if any) matched.
    for (const entry of table) {
      if (crypto.timingSafeEqual(entry.digest, digest)) found = entry.instance
    }
    return found
  }

  return function resolveInstance (request: InstanceRequest): string | null {
    const auth = request.headers.authorization
    if (typeof auth === 'string') return lookup(credential(auth))
    if (queryTokens && request.url !== undefined && isUpgrade(request.headers)) {
      const q = request.url.indexOf('?')
      if (q !== -1) {
        const params = new URLSearchParams(request.url.slice(q + 1))
        return lookup(params.get('access_token') ?? params.get('watson-token'))
      }
    }
    return null
  }
}

function isUpgrade (headers: InstanceRequest['headers']): boolean {
  const upgrade = headers.upgrade
  return typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket'
}

/** The API key in an Authorization header, or null when the scheme is neither Basic apikey nor Bearer. */
function credential (header: string): string | null {
  if (header.length > MAX_CREDENTIAL) return null
  const space = header.indexOf(' ')
  if (space === -1) return null
  const scheme = header.slice(0, space).toLowerCase()
  const value = header.slice(space + 1).trim()
  if (scheme === 'bearer') return value
  if (scheme !== 'basic') return null
  const decoded = Buffer.from(value, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  if (colon === -1 || decoded.slice(0, colon) !== 'apikey') return null
  return decoded.slice(colon + 1)
}
