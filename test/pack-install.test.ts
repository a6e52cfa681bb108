// A stranger's install (issue 10): the package is packed as npm publishes it, installed into empty
// host projects outside the repository, and the README's quick starts run there — JavaScript with
// SQLite; strict TypeScript (NodeNext, no skipLibCheck) on PostgreSQL only, without better-sqlite3;
// and CommonJS. Slow (real npm installs), so it runs once, whole.
import { test } from 'tap'
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import pg from 'pg'
import { PG_URL, pgSkipReason } from './helpers/pg.js'
import { driveQuickstart, readmeBlock, startQuickstart } from './helpers/quickstart.js'

const run = promisify(execFile)
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const readme = readFileSync(join(root, 'README.md'), 'utf8')
/** The environment of a host's shell: none of the npm_* variables `npm test` sets for us. */
const hostEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')))
const INSTALL_TIMEOUT_MS = 15 * 60_000

async function npm (cwd: string, args: string[]): Promise<string> {
  const { stdout } = await run('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], { cwd, env: hostEnv, timeout: INSTALL_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 })
  return stdout
}

function hostProject (t: { teardown: (fn: () => void) => void }, name: string, extra: object = {}): string {
  const dir = mkdtempSync(join(tmpdir(), `fcd-host-${name}-`))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `host-${name}`, private: true, ...extra }, null, 2))
  return dir
}

test('packed, installed and used as strangers do', { timeout: 2 * INSTALL_TIMEOUT_MS }, async (t) => {
  const packDir = mkdtempSync(join(tmpdir(), 'fcd-pack-'))
  t.teardown(() => rmSync(packDir, { recursive: true, force: true }))
  // dist/ was just built by `npm test`'s pretest; the prepare script builds it for git installs.
  const [packed] = JSON.parse(await npm(root, ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir])) as Array<{ filename: string, files: Array<{ path: string }> }>
  const tarball = join(packDir, packed.filename)
  const files = packed.files.map((f) => f.path)

  t.test('the tarball holds the library only', async (t) => {
    for (const must of ['dist/index.js', 'dist/index.d.ts', 'dist/lib/engine.js', 'dist/plugins/customer-labels.js', 'dist/lib/stores/postgres.d.ts', 'dist/plugins/console-assets/index.html', 'dist/plugins/console-assets/console.js', 'README.md', 'LICENSE', 'CHANGELOG.md', 'package.json']) {
      t.ok(files.includes(must), `has ${must}`)
    }
    t.same(files.filter((f) => /^(dist\/(examples|bench|test)\/|test\/|lib\/|plugins\/|examples\/|bench\/|\.ci\/)/.test(f)), [], 'no examples, benchmarks, tests or TypeScript sources')
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string>, peerDependenciesMeta: Record<string, { optional: boolean }> }
    t.notOk('better-sqlite3' in pkg.dependencies || 'pg' in pkg.dependencies, 'the drivers are not hard dependencies')
    t.same(pkg.peerDependenciesMeta, { 'better-sqlite3': { optional: true }, pg: { optional: true }, 'prom-client': { optional: true } }, 'the drivers and prom-client (metrics) are optional peers')
    const types = readFileSync(join(root, 'dist', 'lib', 'stores', 'postgres.d.ts'), 'utf8') + readFileSync(join(root, 'dist', 'lib', 'stores', 'sqlite.d.ts'), 'utf8')
    t.notMatch(types, /from ['"](pg|better-sqlite3)['"]/, 'the published types import no driver types')
  })

  await t.test('JavaScript host with SQLite: the README quick start as pasted; CommonJS require', async (t) => {
    const dir = hostProject(t, 'js', { type: 'module' })
    await npm(dir, ['install', tarball, 'fastify@5', 'better-sqlite3@12'])
    writeFileSync(join(dir, 'quickstart.mjs'), readmeBlock(readme, '## Quick start', 'js'))
    await driveQuickstart(t, await startQuickstart(t, dir, 'quickstart.mjs'), dir)
    writeFileSync(join(dir, 'from-cjs.cjs'), readmeBlock(readme, '### From CommonJS', 'js'))
    const { stdout } = await run(process.execPath, ['from-cjs.cjs'], { cwd: dir, env: hostEnv })
    t.match(stdout, /function function/, 'require() gives the plugin and the named exports')
  })

  const pgSkip = await pgSkipReason()
  await t.test('strict TypeScript host on PostgreSQL only, without better-sqlite3', { skip: pgSkip }, async (t) => {
    const dir = hostProject(t, 'ts', { type: 'module' })
    await npm(dir, ['install', tarball, 'fastify@5', 'pg@8', 'typescript@~5.9', '@types/node@20'])
    t.notOk(existsSync(join(dir, 'node_modules', 'better-sqlite3')), 'better-sqlite3 was not installed')
    t.notOk(existsSync(join(dir, 'node_modules', '@types', 'pg')), '@types/pg was not needed')
    // The README's tsconfig, with skipLibCheck spelled out as off: the published types must compile.
    const tsconfig = JSON.parse(readmeBlock(readme, '## TypeScript', 'json')) as { compilerOptions: Record<string, unknown> }
    t.equal(tsconfig.compilerOptions.skipLibCheck, undefined, 'the README does not need skipLibCheck')
    tsconfig.compilerOptions.skipLibCheck = false
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify(tsconfig))
    writeFileSync(join(dir, 'quickstart.ts'), readmeBlock(readme, '## TypeScript', 'ts'))
    await run(join(dir, 'node_modules', '.bin', 'tsc'), ['-p', '.'], { cwd: dir, env: hostEnv }).catch((err: { stdout: string }) => {
      throw new Error(`tsc failed on the README's TypeScript quick start:\n${err.stdout}`)
    })
    // A database of its own, so nothing else's tables are near it.
    const database = `fcd_pack_${process.pid}`
    const admin = new pg.Client({ connectionString: PG_URL })
    await admin.connect()
    await admin.query(`DROP DATABASE IF EXISTS ${database}`)
    await admin.query(`CREATE DATABASE ${database}`)
    t.teardown(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`)
      await admin.end()
    })
    const url = new URL(PG_URL)
    url.pathname = `/${database}`
    await driveQuickstart(t, await startQuickstart(t, dir, 'out/quickstart.js', { DATABASE_URL: url.toString() }), dir)

    writeFileSync(join(dir, 'no-sqlite.mjs'), "import { sqliteStore } from 'fastify-customer-data'\nawait sqliteStore({ path: 'x.db' }).open().catch((err) => { console.log(err.message) })\n")
    const { stdout } = await run(process.execPath, ['no-sqlite.mjs'], { cwd: dir, env: hostEnv })
    t.match(stdout, /npm install better-sqlite3/, 'sqliteStore without its driver names the package to install')
  })
})
