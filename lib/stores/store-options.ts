// The checks the store factories make on their options, once, when the store is created
// (docs/ARCHITECTURE.md, "Options"). Same signatures as lib/options.ts's checkers, so the two can
// become one.
import { FST_CUSTOMER_DATA_INVALID_OPTION } from '../errors.js'

/** A whole number in [min, max]; `fallback` when undefined. Zero, fractions, NaN, Infinity and strings are refused. */
export function checkInteger (name: string, value: unknown, range: { min: number, max: number }, fallback: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > range.max) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION(`${name} must be a whole number from ${range.min} to ${range.max}, got ${show(value)}`)
  }
  return value
}

/** An options object with no key outside `known`. */
export function checkKnownKeys<T extends object> (where: string, options: T, known: readonly string[]): T {
  if (options === undefined || options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new FST_CUSTOMER_DATA_INVALID_OPTION(`the options of ${where} must be an object`)
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new FST_CUSTOMER_DATA_INVALID_OPTION(`${where} has no option "${key}" (known: ${known.join(', ')})`)
  }
  return options
}

function show (value: unknown): string {
  if (typeof value === 'number') return String(value)
  if (typeof value === 'string') return `a string (${JSON.stringify(value.slice(0, 32))})`
  return value === null ? 'null' : typeof value
}
