// Keeps customer IDs, API keys, secrets and tokens out of logs at every level (docs/ARCHITECTURE.md,
// "Logs"). Fastify's request logs carry URLs (with ?customer_id=…, ?user_secret=…, a WebSocket's
// ?access_token=…) and, with common serializers, headers. Every line is scrubbed as it is written, so
// whatever logged it — Fastify, another plugin, a serializer the host chose — the values never leave.

/** Query parameters whose values never reach a log. Compared case-insensitively. */
export const REDACTED_PARAMETERS = ['customer_id', 'x-watson-metadata', 'user_secret', 'access_token', 'watson-token', 'apikey', 'api_key', 'token'] as const
/** Headers whose values never reach a log (logged header objects use lower-case names). */
export const REDACTED_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-watson-metadata', 'x-callback-signature', 'x-api-key', 'x-csrf-token'] as const
export const REDACTED = '[redacted]'

function escapeRegExp (s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

export interface LogRedactor {
  /** The line with every named parameter value and header value replaced by "[redacted]". */
  (line: string): string
}

/**
 * Builds the scrubber for a set of parameter and header names. Parameters are matched in URLs
 * (`?name=` or `&name=`, also percent-encoded names); headers as JSON keys (`"name":"…"`) and as
 * raw `name: value` text.
 */
export function logRedactor (parameters: readonly string[], headers: readonly string[]): LogRedactor {
  const names = [...new Set(parameters.map((p) => p.toLowerCase()))]
  const encoded = names.map((n) => n.replace(/[^A-Za-z0-9]/g, (c) => `(?:${escapeRegExp(c)}|%${c.charCodeAt(0).toString(16).padStart(2, '0')})`))
  // A value ends at the next parameter, fragment, whitespace or the quote closing a JSON string
  // (an escaped quote, inside the value, does not end it).
  const query = new RegExp(`([?&](?:${encoded.join('|')})=)(?:[^&#"\\s\\\\]|\\\\.)*`, 'gi')
  const headerNames = [...new Set(headers.map((h) => h.toLowerCase()))].map(escapeRegExp).join('|')
  const jsonHeader = new RegExp(`("(?:${headerNames})"\\s*:\\s*)("(?:[^"\\\\]|\\\\.)*"|\\[[^\\]]*\\])`, 'gi')
  const textHeader = new RegExp(`(^|[\\r\\n])((?:${headerNames})\\s*:)[^\\r\\n]*`, 'gi')
  const quick = new RegExp(`${encoded.join('|')}|${headerNames}`, 'i')
  return (line) => {
    if (!quick.test(line)) return line // most lines name none of them
    return line
      .replace(query, `$1${REDACTED}`)
      .replace(jsonHeader, `$1"${REDACTED}"`)
      .replace(textHeader, `$1$2 ${REDACTED}`)
  }
}

const kRedacting = Symbol.for('fastify-customer-data.redacting')

interface WritableLike { write: (chunk: string) => unknown }

/**
 * Scrubs every line a pino logger (and each of its children, present and future) writes. Returns
 * false when the logger is not pino (its lines cannot be reached): the caller says so at startup.
 */
export function redactPinoLogger (logger: object, redact: LogRedactor): boolean {
  let owner: object | null = logger
  let streamSym: symbol | undefined
  while (owner !== null) {
    streamSym = Object.getOwnPropertySymbols(owner).find((s) => s.description === 'pino.stream')
    if (streamSym !== undefined) break
    owner = Object.getPrototypeOf(owner) as object | null
  }
  if (owner === null || streamSym === undefined) return false
  const target = (owner as Record<symbol, WritableLike>)[streamSym]
  if (target === undefined || target === null || typeof target.write !== 'function') return false
  if ((target as unknown as Record<symbol, unknown>)[kRedacting] === true) return true
  const write = (chunk: string): unknown => target.write(typeof chunk === 'string' ? redact(chunk) : chunk)
  ;(owner as Record<symbol, unknown>)[streamSym] = new Proxy(target, {
    get (t, prop) {
      if (prop === 'write') return write
      if (prop === kRedacting) return true
      const value = Reflect.get(t, prop, t) as unknown
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(t) : value
    }
  })
  return true
}
