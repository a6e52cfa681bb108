// The console in real headless Chromium (Debian's chromium, driven by playwright-core): sign in,
// see a stuck deletion and its error, look up a customer, delete it, watch it complete; a wrong
// key is refused; markup in IDs is shown as text. Takes the screenshot the README shows.
import { test } from 'tap'
import { existsSync, mkdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { chromium, type Browser, type Page } from 'playwright-core'
import { buildApp } from './helpers/app.js'

const CHROMIUM = '/usr/bin/chromium'
// The README's picture is refreshed on request (UPDATE_SCREENSHOT=1), so a test run leaves the tree clean.
const SCREENSHOT = process.env.UPDATE_SCREENSHOT === '1' ? new URL('../docs/console.png', import.meta.url) : new URL(`file://${tmpdir()}/fcd-console-${process.pid}.png`)
const EVIL_CUSTOMER = '<script>window.__pwned = 1</script>'
const EVIL_RESOURCE = '<img src=x onerror="window.__pwned = 2">'

function skipReason (): string | false {
  if (existsSync(CHROMIUM)) return false
  const reason = `${CHROMIUM} is missing (apt-get install -y chromium)`
  if (process.env.CI === 'true') throw new Error(reason + ': CI installs it in .ci/run')
  return reason
}

async function launch (): Promise<Browser> {
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking']
  })
}

async function signIn (page: Page, key: string): Promise<void> {
  await page.fill('#api-key', key)
  await page.click('#sign-in button[type="submit"]')
}

test('the console, end to end in headless Chromium', { skip: skipReason() }, async (t) => {
  const jobs = { failing: true }
  const erasers = {
    audio: async () => {},
    word: async () => {},
    job: async () => { if (jobs.failing) throw new Error('job archive is read-only') }
  }
  const { app } = await buildApp({ erasers, waitMs: 100, retryMinMs: 500, retryMaxMs: 1000, console: { prefix: '/console' } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const origin = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  // A deletion stuck on a failing eraser, and a customer whose ID and resources carry markup.
  await (await app.customerData.label('instance-1', ['stuck-customer'], 'job', 'job-17')).commit()
  const stuck = await app.customerData.requestDeletion('instance-1', 'stuck-customer', { waitMs: 100 })
  t.equal(stuck.status, 'running')
  await (await app.customerData.label('instance-1', [EVIL_CUSTOMER], 'audio', EVIL_RESOURCE)).commit()
  await (await app.customerData.label('instance-1', [EVIL_CUSTOMER], 'word', 'hello')).commit()
  await (await app.customerData.label('instance-2', ['other-customer'], 'audio', 'elsewhere')).commit()
  const hidden = await app.customerData.requestDeletion('instance-2', 'other-customer', { waitMs: 1000 })

  const browser = await launch()
  t.teardown(() => browser.close())
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  const problems: string[] = []
  page.on('console', (msg) => { if (msg.type() === 'error' && !/status of 40[13]/.test(msg.text())) problems.push(msg.text()) })
  page.on('pageerror', (err) => { problems.push(err.message) })
  page.on('dialog', (dialog) => { problems.push('unexpected dialog: ' + dialog.message()); dialog.dismiss().catch(() => {}) })
  const outside: string[] = []
  page.on('request', (req) => { if (!req.url().startsWith(origin)) outside.push(req.url()) })

  const res = await page.goto(`${origin}/console/`)
  t.match(res?.headers()['content-security-policy'], /script-src 'self'/)

  // A wrong key is refused.
  await signIn(page, 'not-a-key')
  await page.waitForFunction("document.getElementById('sign-in-error').textContent !== ''")
  t.equal(await page.textContent('#sign-in-error'), 'That API key belongs to no service instance.')
  t.ok(await page.isHidden('#app-view'), 'the console stays closed')
  t.same(await context.cookies(), [], 'no session cookie')

  // The right one opens the instance's console, with an HttpOnly, SameSite=Strict session cookie.
  await signIn(page, 'key-one')
  await page.waitForSelector('#app-view:not([hidden])')
  t.equal(await page.textContent('#instance'), 'instance-1')
  const [cookie] = await context.cookies()
  t.equal(cookie.httpOnly, true)
  t.equal(cookie.sameSite, 'Strict')
  t.equal(cookie.path, '/console')
  t.equal(await page.evaluate('document.cookie'), '', 'the page script cannot read it')

  // The stuck deletion, marked with its eraser's error and next retry.
  const stuckRow = page.locator(`tr[data-deletion-id="${stuck.id}"]`)
  await stuckRow.locator('text=job archive is read-only').waitFor()
  t.equal(await stuckRow.getAttribute('class'), 'stuck')
  t.match(await stuckRow.textContent(), /Stuck: job eraser failed/)
  t.match(await stuckRow.textContent(), /next retry/)
  t.equal(await page.locator(`tr[data-deletion-id="${hidden.id}"]`).count(), 0, "another instance's deletion is not shown")

  // Look up a customer whose ID is markup: shown as text, never run.
  await page.fill('#customer-id', EVIL_CUSTOMER)
  await page.click('#lookup button[type="submit"]')
  await page.waitForSelector('#lookup-result:not([hidden])')
  t.equal(await page.textContent('#lookup-customer'), EVIL_CUSTOMER, 'the ID, as text')
  t.equal(await page.textContent('#lookup-count'), '2 resource(s)')
  const cells = await page.locator('#lookup-table tbody tr').evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].slice(0, 2).map((c) => c.textContent)))
  t.same(cells, [['audio', EVIL_RESOURCE], ['word', 'hello']], 'kinds and ids, in label order')
  t.equal(await page.locator('#lookup-table img, #lookup-result script').count(), 0, 'no element was made from the data')

  // Delete it after the confirmation, and watch it complete without reloading.
  await page.click('#delete-start')
  await page.waitForSelector('#confirm:not([hidden])')
  t.equal(await page.textContent('#confirm-customer'), EVIL_CUSTOMER)
  // The README's picture: a stuck deletion, a look-up shown as text, the confirmation.
  mkdirSync(new URL('.', SCREENSHOT), { recursive: true })
  await page.screenshot({ path: SCREENSHOT.pathname, fullPage: true })
  const navigations: string[] = []
  page.on('framenavigated', (frame) => { navigations.push(frame.url()) })
  await page.click('#delete-confirm')
  await page.waitForSelector('#delete-status[data-status="completed"]')
  t.match(await page.textContent('#delete-status'), /completed: erased audio 1, word 1/)
  t.same(navigations, [], 'no reload')
  const done = page.locator('#deletions tbody tr').first()
  await done.locator('text=completed').waitFor()
  await page.waitForFunction("document.getElementById('lookup-count').textContent === 'nothing'")
  t.ok(await page.isHidden('#lookup-table'), 'a fresh look-up finds nothing left')
  t.equal(await page.evaluate('typeof window.__pwned'), 'undefined', 'no script from the data ran')

  // The stuck deletion completes once its eraser recovers; the page updates itself.
  jobs.failing = false
  await stuckRow.locator('text=completed').waitFor({ timeout: 10_000 })
  t.same(problems, [], 'no script error, CSP violation or dialog')
  t.same(outside, [], 'the page loads nothing from elsewhere')
})
