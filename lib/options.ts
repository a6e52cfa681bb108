// Every option of every plugin is checked here, once, at register time (docs/ARCHITECTURE.md,
// "Options"): a wrong option is a startup error that names it, never a hang or a 500 at request 10,000.
import { FST_CUSTOMER_DATA_INVALID_OPTION } from './errors.js'
import { DEFAULT_HEADER_NAME, DEFAULT_MAX_ID_LENGTH, DEFAULT_MAX_IDS, MAX_METADATA_BYTES, QUERY_PARAMETER } from './metadata.js'

/** A whole number in [min, max]; `fallback` when undefined. Zero, fractions, NaN, Infinity and strings are refused. */
export function checkInteger (name: string, value: unknown, range: { min: number, max: number }, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > range.max) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION(`${name} must be a whole number from ${range.min} to ${range.max}, got ${show(value)}`)
  }
  return value
}

/** A finite number of milliseconds in [min, max]; `fallback` when undefined. */
export function checkMilliseconds (name: string, value: unknown, range: { min: number, max: number }, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < range.min || value > range.max) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION(`${name} must be a number of milliseconds from ${range.min} to ${range.max}, got ${show(value)}`)
  }
  return value
}

export function checkBoolean (name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw new FST_CUSTOMER_DATA_INVALID_OPTION(`${name} must be true or false, got ${show(value)}`)
  return value
}

/** An options object: an object (undefined → {}), with no key outside `known`; null is refused. */
export function checkKnownKeys<T extends object> (where: string, options: T | undefined, known: readonly string[]): T {
  if (options === undefined) return {} as T
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION(`the options of ${where} must be an object`)
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new FST_CUSTOMER_DATA_INVALID_OPTION(`${where} has no option "${key}" (known: ${known.join(', ')})`)
    }
  }
  return options
}

/** What a bad value looked like, for the message: its type and, for numbers, the number. */
function show (value: unknown): string {
  if (typeof value === 'number') return String(value)
  if (typeof value === 'string') return `a string (${JSON.stringify(value.slice(0, 32))})`
  return value === null ? 'null' : typeof value
}

/** Keys Fastify itself adds to every plugin's options object; never the host's mistake. */
export const FASTIFY_PLUGIN_KEYS = ['prefix', 'logLevel', 'logSerializers'] as const

/** setTimeout's longest delay (2^31 - 1 ms, about 24.8 days); a longer one would fire at once. */
export const MAX_TIMER_MS = 2_147_483_647
/** More labels than this in one deletion batch would make one eraser call and one transaction too large. */
export const MAX_BATCH_SIZE = 100_000

export const ENGINE_DEFAULTS = {
  leaseMs: 60_000,
  batchSize: 500,
  reaperMs: 10_000,
  eraserTimeoutMs: 30_000,
  retryMinMs: 100,
  retryMaxMs: 30_000
} as const

export type EngineTimings = { -readonly [K in keyof typeof ENGINE_DEFAULTS]: number }

/** The engine's numbers, checked and defaulted. */
export function checkEngineTimings (options: Partial<Record<keyof EngineTimings, unknown>>): EngineTimings {
  const timer = { min: 1, max: MAX_TIMER_MS }
  const timings: EngineTimings = {
    leaseMs: checkMilliseconds('leaseMs', options.leaseMs, timer, ENGINE_DEFAULTS.leaseMs),
    batchSize: checkInteger('batchSize', options.batchSize, { min: 1, max: MAX_BATCH_SIZE }, ENGINE_DEFAULTS.batchSize),
    reaperMs: checkMilliseconds('reaperMs', options.reaperMs, timer, ENGINE_DEFAULTS.reaperMs),
    eraserTimeoutMs: checkMilliseconds('eraserTimeoutMs', options.eraserTimeoutMs, timer, ENGINE_DEFAULTS.eraserTimeoutMs),
    retryMinMs: 0,
    retryMaxMs: checkMilliseconds('retryMaxMs', options.retryMaxMs, timer, ENGINE_DEFAULTS.retryMaxMs)
  }
  // A cap set alone lowers the default first delay with it.
  timings.retryMinMs = checkMilliseconds('retryMinMs', options.retryMinMs, timer, Math.min(ENGINE_DEFAULTS.retryMinMs, timings.retryMaxMs))
  if (timings.retryMinMs > timings.retryMaxMs) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION(`retryMinMs (${timings.retryMinMs}) must not exceed retryMaxMs (${timings.retryMaxMs})`)
  }
  return timings
}

export interface MetadataOptionsInput {
  headerName?: unknown
  maxIdLength?: unknown
  maxIds?: unknown
  queryParameter?: unknown
  redactLogs?: unknown
  redactParameters?: unknown
  redactHeaders?: unknown
}

export interface NormalizedMetadataOptions {
  headerName: string
  maxIdLength: number
  maxIds: number
  queryParameter: string
  redactLogs: boolean
  redactParameters: string[]
  redactHeaders: string[]
}

const FIELD_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/ // RFC 9110 §5.1 field-name
const MAX_NAME_LENGTH = 256

function checkNames (name: string, value: unknown): string[] {
  if (value === undefined) return []
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v.length > 0 && v.length <= MAX_NAME_LENGTH)) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION(`${name} must be an array of names (non-empty strings)`)
  }
  return value as string[]
}

/** The metadata grammar's limits, the header and query parameter it reads, and log redaction. */
export function checkMetadataOptions (options: MetadataOptionsInput): NormalizedMetadataOptions {
  const headerName = options.headerName ?? DEFAULT_HEADER_NAME
  if (typeof headerName !== 'string' || !FIELD_NAME.test(headerName) || headerName.length > MAX_NAME_LENGTH) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('headerName must be an HTTP header name such as "x-watson-metadata"')
  }
  const queryParameter = options.queryParameter ?? QUERY_PARAMETER
  if (typeof queryParameter !== 'string' || queryParameter.length === 0 || queryParameter.length > MAX_NAME_LENGTH) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION('queryParameter must be a non-empty string such as "x-watson-metadata"')
  }
  return {
    headerName: headerName.toLowerCase(),
    maxIdLength: checkInteger('maxIdLength', options.maxIdLength, { min: 1, max: MAX_METADATA_BYTES }, DEFAULT_MAX_ID_LENGTH),
    maxIds: checkInteger('maxIds', options.maxIds, { min: 1, max: 1024 }, DEFAULT_MAX_IDS),
    queryParameter,
    redactLogs: checkBoolean('redactLogs', options.redactLogs, true),
    redactParameters: checkNames('redactParameters', options.redactParameters),
    redactHeaders: checkNames('redactHeaders', options.redactHeaders)
  }
}
