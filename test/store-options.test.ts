// Store options are checked once, when the store is created; the drivers are optional and load
// only when their store opens; the published types need neither driver's types.
import { test } from 'tap'
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { memoryStore, postgresStore, sqliteStore, errors } from '../index.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const BAD_COUNTS: unknown[] = [0, 0.5, -1, NaN, Infinity, '10', null, 1e12]

test('sqliteStore refuses a bad maxGroup, naming it, instead of hanging or flooring it', async (t) => {
  for (const maxGroup of BAD_COUNTS) {
    t.throws(() => sqliteStore({ path: 'x.db', maxGroup: maxGroup as number }), { code: 'FST_CUSTOMER_DATA_INVALID_OPTION', message: /maxGroup/ }, `maxGroup ${String(maxGroup)}`)
  }
  t.throws(() => sqliteStore({ path: 'x.db', maxgroup: 5 } as never), { message: /no option "maxgroup"/ }, 'an unknown key (a typo) is refused')
  t.throws(() => sqliteStore({ path: '' }), errors.FST_CUSTOMER_DATA_INVALID_OPTION)
  t.throws(() => sqliteStore(null as never), errors.FST_CUSTOMER_DATA_INVALID_OPTION)
  const dir = mkdtempSync(join(tmpdir(), 'fcd-opt-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const store = sqliteStore({ path: join(dir, 'one.db'), maxGroup: 1 })
  await store.open()
  const now = Date.now()
  await Promise.all(Array.from({ length: 5 }, (_, i) => store.label([{ leaseId: `l${i}`, instance: 'i', customers: ['c'], kind: 'k', id: `r${i}`, now, expiresAt: now + 1000 }])))
  t.equal((await store.exportLabels('i', 'c', 10, null)).items.length, 5, 'groups of one still flush everything')
  await store.close()
})

test('postgresStore refuses a bad pool size, a pool that is not one, and unknown keys', async (t) => {
  const connectionString = 'postgres://127.0.0.1/none'
  for (const max of [...BAD_COUNTS, 1]) {
    t.throws(() => postgresStore({ connectionString, max: max as number }), { code: 'FST_CUSTOMER_DATA_INVALID_OPTION', message: /max/ }, `max ${String(max)}`)
  }
  t.throws(() => postgresStore({ connectionString, shema: 'x' } as never), { message: /no option "shema"/ })
  t.throws(() => postgresStore({ pool: {} as never }), { message: /pg Pool/ })
  t.throws(() => postgresStore({ pool: { connect () {}, query () {} } as never, max: 5 }), { message: /size your own pool/ })
})

test('memoryStore refuses unknown keys and a short secret', async (t) => {
  t.throws(() => memoryStore({ secrets: Buffer.alloc(32) } as never), errors.FST_CUSTOMER_DATA_INVALID_OPTION)
  t.throws(() => memoryStore({ secret: Buffer.alloc(4) }), errors.FST_CUSTOMER_DATA_INVALID_OPTION)
})

test('the published types import neither driver', async (t) => {
  const files: string[] = []
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory() && e.name !== 'test' && e.name !== 'bench' && e.name !== 'examples') walk(join(dir, e.name))
      else if (e.name.endsWith('.d.ts')) files.push(join(dir, e.name))
    }
  }
  walk(join(root, 'dist'))
  t.ok(files.some((f) => f.endsWith('postgres.d.ts')), 'the store declarations were built')
  for (const f of files) {
    t.notMatch(readFileSync(f, 'utf8'), /from ['"](pg|better-sqlite3)['"]|import\(['"](pg|better-sqlite3)['"]\)/, `${f.slice(root.length + 1)} needs no driver types`)
  }
})

test('a host without the drivers loads the package, and a store whose driver is missing names the package to install', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fcd-nodriver-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true })
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }')
  mkdirSync(join(dir, 'node_modules'))
  for (const name of readdirSync(join(root, 'node_modules'))) {
    if (name === 'pg' || name === 'better-sqlite3' || name.startsWith('.')) continue
    symlinkSync(join(root, 'node_modules', name), join(dir, 'node_modules', name))
  }
  writeFileSync(join(dir, 'host.mjs'), `
    import { memoryStore, sqliteStore, postgresStore, CustomerDataEngine } from './dist/index.js'
    const out = {}
    const engine = new CustomerDataEngine({ store: memoryStore(), erasers: { a: async () => {} } })
    await engine.start()
    out.memory = (await engine.label('i', ['c'], 'a', 'x')).labeled
    await engine.close()
    for (const [name, store] of [['sqlite', sqliteStore({ path: 'x.db' })], ['pg', postgresStore({ connectionString: 'postgres://127.0.0.1/x' })]]) {
      try { await store.open(); out[name] = 'opened' } catch (err) { out[name] = err.code + ': ' + err.message }
    }
    console.log(JSON.stringify(out))
  `)
  const run = spawnSync(process.execPath, ['host.mjs'], { cwd: dir, encoding: 'utf8', timeout: 30_000 })
  t.equal(run.status, 0, run.stderr)
  const out = JSON.parse(run.stdout)
  t.equal(out.memory, true, 'the package works with neither driver installed')
  t.match(out.sqlite, /^FST_CUSTOMER_DATA_INVALID_OPTION: .*sqliteStore needs the "better-sqlite3" package.*npm install better-sqlite3@12/)
  t.match(out.pg, /^FST_CUSTOMER_DATA_INVALID_OPTION: .*postgresStore needs the "pg" package.*npm install pg@8/)
})
