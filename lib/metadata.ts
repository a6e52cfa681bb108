// The X-Watson-Metadata grammar (docs/ARCHITECTURE.md, "Metadata"): one pure parser for the HTTP header and the
// percent-decoded WebSocket query parameter, so the same ID sent either way is the same string.
import { FST_CUSTOMER_DATA_CUSTOMER_ID_INVALID, FST_CUSTOMER_DATA_METADATA_INVALID } from './errors.js'

export const DEFAULT_MAX_ID_LENGTH = 256
export const DEFAULT_MAX_IDS = 16
export const MAX_METADATA_BYTES = 4096
export const DEFAULT_HEADER_NAME = 'x-watson-metadata'
export const QUERY_PARAMETER = 'x-watson-metadata'

export interface MetadataLimits {
  /** Longest customer ID, in characters (Unicode code points). Default 256. */
  maxIdLength?: number
  /** Most distinct customer IDs in one value. Default 16. */
  maxIds?: number
}

interface ParseOptions extends MetadataLimits {
  /** Names the header or parameter in error messages. */
  source?: string
}

export const EMPTY_IDS: readonly string[] = Object.freeze([])

const utf8 = new TextDecoder('utf-8', { fatal: true })
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/
// eslint-disable-next-line no-control-regex
const ASCII = /^[\u0000-\u007f]*$/
const CUSTOMER_ID = 'customer_id'

function trimSpaceTab (s: string): string {
  let start = 0
  let end = s.length
  while (start < end && (s.charCodeAt(start) === 32 || s.charCodeAt(start) === 9)) start++
  while (end > start && (s.charCodeAt(end - 1) === 32 || s.charCodeAt(end - 1) === 9)) end--
  return start === 0 && end === s.length ? s : s.slice(start, end)
}

function codePointLength (s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0xd800 || c > 0xdbff) n++
  }
  return n
}

/**
 * Parses an X-Watson-Metadata value. A string is decoded text; a Buffer is UTF-8 bytes.
 * Returns the distinct customer IDs in order of first appearance; throws
 * FST_CUSTOMER_DATA_METADATA_INVALID (400) on anything the grammar rejects (docs/ARCHITECTURE.md, "Metadata").
 */
export function parseCustomerMetadata (value: string | Buffer, options: ParseOptions = {}): string[] {
  const source = options.source ?? 'X-Watson-Metadata header'
  const maxIdLength = options.maxIdLength ?? DEFAULT_MAX_ID_LENGTH
  const maxIds = options.maxIds ?? DEFAULT_MAX_IDS
  let text: string
  if (typeof value === 'string') {
    if (!value.isWellFormed()) throw new FST_CUSTOMER_DATA_METADATA_INVALID(source, 'it contains text that is not valid Unicode')
    text = value
    if (Buffer.byteLength(text, 'utf8') > MAX_METADATA_BYTES) throw tooLong(source)
  } else if (Buffer.isBuffer(value)) {
    if (value.length > MAX_METADATA_BYTES) throw tooLong(source)
    try {
      text = utf8.decode(value)
    } catch {
      throw new FST_CUSTOMER_DATA_METADATA_INVALID(source, 'its bytes are not valid UTF-8')
    }
  } else {
    throw new TypeError('parseCustomerMetadata expects a string or a Buffer')
  }

  const ids: string[] = []
  for (const segment of text.split(';')) {
    const pair = trimSpaceTab(segment)
    if (pair === '') continue
    const eq = pair.indexOf('=')
    if (eq === -1) throw new FST_CUSTOMER_DATA_METADATA_INVALID(source, 'a pair has no "="')
    if (pair.indexOf('=', eq + 1) !== -1) throw new FST_CUSTOMER_DATA_METADATA_INVALID(source, 'a pair has a second "=" (a value may not contain "=" or ";")')
    const key = trimSpaceTab(pair.slice(0, eq))
    if (key === '') throw new FST_CUSTOMER_DATA_METADATA_INVALID(source, 'a pair has an empty key')
    const id = trimSpaceTab(pair.slice(eq + 1))
    if (CONTROL.test(key) || CONTROL.test(id)) throw new FST_CUSTOMER_DATA_METADATA_INVALID(source, 'it contains a control character')
    if (id === '' || key.toLowerCase() !== CUSTOMER_ID) continue
    if (codePointLength(id) > maxIdLength) throw new FST_CUSTOMER_DATA_METADATA_INVALID(source, `a customer_id is longer than ${maxIdLength} characters`)
    if (!ids.includes(id)) {
      if (ids.length === maxIds) throw new FST_CUSTOMER_DATA_METADATA_INVALID(source, `it names more than ${maxIds} customer IDs`)
      ids.push(id)
    }
  }
  return ids
}

function tooLong (source: string): Error {
  return new FST_CUSTOMER_DATA_METADATA_INVALID(source, `it is longer than ${MAX_METADATA_BYTES} bytes`)
}

/**
 * Parses several lines of the metadata header (HTTP allows a field to repeat; Node would join them
 * with ", ", which changes their meaning). Each line is read with the grammar on its own, as Node
 * hands it over; the customer IDs are united, and the limits apply to the union.
 */
export function parseMetadataLines (lines: readonly string[], options: ParseOptions = {}): string[] {
  const source = options.source ?? 'X-Watson-Metadata header'
  const maxIds = options.maxIds ?? DEFAULT_MAX_IDS
  let bytes = 0
  const ids: string[] = []
  for (const line of lines) {
    bytes += line.length // latin1 as Node hands it over: one character per byte
    if (bytes > MAX_METADATA_BYTES) throw new FST_CUSTOMER_DATA_METADATA_INVALID(source, `its lines together are longer than ${MAX_METADATA_BYTES} bytes`)
    for (const id of parseMetadataHeader(line, { ...options, source })) {
      if (ids.includes(id)) continue
      if (ids.length === maxIds) throw new FST_CUSTOMER_DATA_METADATA_INVALID(source, `its lines together name more than ${maxIds} customer IDs`)
      ids.push(id)
    }
  }
  return ids
}

/**
 * Parses a header value as Node hands it over (each byte one latin1 character) by re-reading its
 * bytes as UTF-8, so a header and a query parameter carrying the same ID agree.
 */
export function parseMetadataHeader (raw: string, options: ParseOptions = {}): string[] {
  if (raw === '') return []
  return parseCustomerMetadata(ASCII.test(raw) ? raw : Buffer.from(raw, 'latin1'), options)
}

function hexValue (c: number): number {
  if (c >= 48 && c <= 57) return c - 48
  if (c >= 65 && c <= 70) return c - 55
  if (c >= 97 && c <= 102) return c - 87
  return -1
}

/** Strict application/x-www-form-urlencoded decoding to bytes; null when an escape is malformed. */
function formDecode (s: string): Buffer | null {
  const out = Buffer.allocUnsafe(Buffer.byteLength(s, 'utf8'))
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c === 37) { // %
      const hi = i + 2 < s.length ? hexValue(s.charCodeAt(i + 1)) : -1
      const lo = hi === -1 ? -1 : hexValue(s.charCodeAt(i + 2))
      if (lo === -1) return null
      out[n++] = hi * 16 + lo
      i += 2
    } else if (c === 43) { // +
      out[n++] = 32
    } else if (c < 0x100) {
      out[n++] = c
    } else {
      n += out.write(String.fromCodePoint(s.codePointAt(i) as number), n, 'utf8')
      if (c >= 0xd800 && c <= 0xdbff) i++
    }
  }
  return out.subarray(0, n)
}

/**
 * Finds the metadata parameter in a raw query string (the part after "?") and parses it.
 * Returns undefined when the parameter is absent. A repeated parameter or a malformed
 * percent-escape in it is a 400.
 */
export function parseMetadataQuery (rawQuery: string, options: ParseOptions & { parameter?: string } = {}): string[] | undefined {
  const parameter = (options.parameter ?? QUERY_PARAMETER).toLowerCase()
  const source = options.source ?? `${parameter} query parameter`
  let found: string | undefined
  for (const part of rawQuery.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const rawName = eq === -1 ? part : part.slice(0, eq)
    const name = formDecode(rawName)
    if (name === null || name.toString('latin1').toLowerCase() !== parameter) continue
    if (found !== undefined) throw new FST_CUSTOMER_DATA_METADATA_INVALID(source, 'the parameter is repeated; send it once')
    found = eq === -1 ? '' : part.slice(eq + 1)
  }
  if (found === undefined) return undefined
  const bytes = formDecode(found)
  if (bytes === null) throw new FST_CUSTOMER_DATA_METADATA_INVALID(source, 'it has a malformed percent-escape')
  return parseCustomerMetadata(bytes, { ...options, source })
}

/**
 * Checks the customer_id of a user_data request by the rules a labeled ID obeys (trimmed, no
 * control character, at most maxIdLength characters) and returns it trimmed.
 */
export function validateCustomerId (value: unknown, maxIdLength = DEFAULT_MAX_ID_LENGTH): string {
  if (value === undefined) throw new FST_CUSTOMER_DATA_CUSTOMER_ID_INVALID('it is missing')
  if (Array.isArray(value)) throw new FST_CUSTOMER_DATA_CUSTOMER_ID_INVALID('it is repeated')
  if (typeof value !== 'string') throw new FST_CUSTOMER_DATA_CUSTOMER_ID_INVALID('it must be a string')
  const id = trimSpaceTab(value)
  if (id === '') throw new FST_CUSTOMER_DATA_CUSTOMER_ID_INVALID('it is empty')
  if (!id.isWellFormed()) throw new FST_CUSTOMER_DATA_CUSTOMER_ID_INVALID('it is not valid Unicode')
  if (CONTROL.test(id)) throw new FST_CUSTOMER_DATA_CUSTOMER_ID_INVALID('it contains a control character')
  if (codePointLength(id) > maxIdLength) throw new FST_CUSTOMER_DATA_CUSTOMER_ID_INVALID(`it is longer than ${maxIdLength} characters`)
  return id
}
