// The metadata parser's cases. The repository keeps its own copy (test/fixtures/metadata-vectors.json),
// so a clone with nothing beside it runs every test; the shared cases, where they exist beside the
// repository (CI has them), are run as well by test/vectors-shared.test.ts, so the two cannot drift apart.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export interface HeaderCase { name: string, header?: string, header_hex?: string, ids?: string[], error?: boolean }
export interface QueryCase { name: string, query: string, ids?: string[], error?: boolean }
export interface UpgradeCase { name: string, query: string, header: string, ids?: string[], error?: boolean }
export interface LinesCase { name: string, lines: string[], ids?: string[], error?: boolean }

export interface Vectors {
  header: HeaderCase[]
  query: QueryCase[]
  upgrade: UpgradeCase[]
  lines: LinesCase[]
}

const here = dirname(fileURLToPath(import.meta.url))
export const FIXTURE_PATH = resolve(here, '..', 'fixtures', 'metadata-vectors.json')
export const SHARED_PATH = resolve(here, '..', '..', '..', 'shared', 'vectors', 'metadata.json')

function load (path: string): Vectors {
  const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<Vectors>
  return { header: v.header ?? [], query: v.query ?? [], upgrade: v.upgrade ?? [], lines: v.lines ?? [] }
}

export const vectors = load(FIXTURE_PATH)

/** The shared cases, or null on a clone with nothing beside it. */
export function sharedVectors (): Vectors | null {
  return existsSync(SHARED_PATH) ? load(SHARED_PATH) : null
}

/** The bytes a client puts on the wire for a header case. */
export function headerBytes (c: HeaderCase): Buffer {
  return c.header_hex !== undefined ? Buffer.from(c.header_hex, 'hex') : Buffer.from(c.header as string, 'utf8')
}
