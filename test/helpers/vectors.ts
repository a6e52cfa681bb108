// Loads the shared parser cases from ../shared (never copied into this repository).
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface HeaderCase { name: string, header?: string, header_hex?: string, ids?: string[], error?: boolean }
export interface QueryCase { name: string, query: string, ids?: string[], error?: boolean }
export interface UpgradeCase { name: string, query: string, header: string, ids?: string[], error?: boolean }

const here = dirname(fileURLToPath(import.meta.url))
export const VECTORS_PATH = resolve(here, '..', '..', '..', 'shared', 'vectors', 'metadata.json')

export const vectors = JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as {
  header: HeaderCase[]
  query: QueryCase[]
  upgrade: UpgradeCase[]
}

/** The bytes a client puts on the wire for a header case. */
export function headerBytes (c: HeaderCase): Buffer {
  return c.header_hex !== undefined ? Buffer.from(c.header_hex, 'hex') : Buffer.from(c.header as string, 'utf8')
}
