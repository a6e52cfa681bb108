// The console page's script (served by plugins/console.ts). Everything shown is set as text
// (textContent), never parsed as HTML; the page's Content-Security-Policy allows this file only.
/* global document, fetch */

const base = document.body.dataset.base
/** How often the deletion list refreshes, and a watched deletion's status is asked. */
const LIST_REFRESH_MS = 2000
const WATCH_MS = 500

let csrf = null
let statusFilter = ''
let listTimer = null
let nextCursor = null
let lookedUp = null

const $ = (id) => document.getElementById(id)

function el (tag, text, className) {
  const node = document.createElement(tag)
  if (text !== undefined && text !== null) node.textContent = String(text)
  if (className !== undefined) node.className = className
  return node
}

function when (iso) {
  return iso === null ? '' : new Date(iso).toLocaleString()
}

function counts (erased) {
  const parts = Object.entries(erased).map(([kind, n]) => `${kind} ${n}`)
  return parts.length === 0 ? 'nothing' : parts.join(', ')
}

async function call (method, path, body) {
  const headers = {}
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (csrf !== null && method !== 'GET') headers['x-csrf-token'] = csrf
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' })
  if (res.status === 204) return null
  const data = await res.json().catch(() => ({}))
  if (!res.ok) {
    if (res.status === 401 && path !== '/api/session') showSignIn('Your session ended: sign in again.')
    const err = new Error(data.error || `The server answered ${res.status}.`)
    err.status = res.status
    throw err
  }
  return data
}

function showSignIn (message) {
  csrf = null
  if (listTimer !== null) clearInterval(listTimer)
  listTimer = null
  $('app-view').hidden = true
  $('who').hidden = true
  $('sign-in-view').hidden = false
  $('sign-in-error').textContent = message || ''
}

function showApp (session) {
  csrf = session.csrf_token
  $('instance').textContent = session.instance
  $('who').hidden = false
  $('sign-in-view').hidden = true
  $('app-view').hidden = false
  $('api-key').value = ''
  selectTab(statusFilter)
  if (listTimer === null) listTimer = setInterval(() => { refreshList().catch(() => {}) }, LIST_REFRESH_MS)
}

function problemCell (d) {
  const cell = el('td', null, 'problem')
  const failures = Object.entries(d.progress.failures)
  for (const [kind, f] of failures) {
    const line = el('div')
    line.append(el('strong', `Stuck: ${kind} eraser failed`), el('span', ` — ${f.error}`), el('div', `attempt ${d.progress.attempts}, next retry ${when(f.next_retry_at)}`))
    cell.append(line)
  }
  if (failures.length === 0 && d.status === 'running' && d.progress.waiting_on_writers > 0) {
    cell.className = ''
    cell.textContent = `waiting for ${d.progress.waiting_on_writers} label(s) whose writer is still storing`
  }
  return cell
}

function deletionRow (d) {
  const row = el('tr')
  row.dataset.deletionId = d.deletion_id
  if (d.status === 'running' && d.progress.attempts > 0) row.className = 'stuck'
  const id = el('td')
  id.append(el('code', d.deletion_id))
  row.append(
    id,
    el('td', when(d.created_at)),
    el('td', d.status, `status-${d.status}`),
    el('td', counts(d.erased)),
    el('td', d.progress.remaining_labels),
    el('td', d.progress.waiting_on_writers),
    problemCell(d)
  )
  return row
}

async function refreshList (append = false) {
  const query = new URLSearchParams({ limit: '20' })
  if (statusFilter !== '') query.set('status', statusFilter)
  if (append && nextCursor !== null) query.set('cursor', nextCursor)
  const page = await call('GET', `/api/deletions?${query}`)
  const body = $('deletions').tBodies[0]
  if (!append) body.replaceChildren()
  for (const d of page.deletions) body.append(deletionRow(d))
  nextCursor = page.next_cursor
  $('more').hidden = nextCursor === null
  $('deletions-empty').hidden = body.rows.length > 0
}

function selectTab (status) {
  statusFilter = status
  for (const tab of document.querySelectorAll('.tab')) tab.setAttribute('aria-selected', String(tab.dataset.status === status))
  refreshList().catch((err) => { $('lookup-error').textContent = err.message })
}

async function lookUp (customerId, keepStatus = false) {
  $('lookup-error').textContent = ''
  if (!keepStatus) $('delete-status').textContent = ''
  $('confirm').hidden = true
  const found = await call('POST', '/api/lookup', { customer_id: customerId })
  lookedUp = customerId
  $('lookup-customer').textContent = customerId
  $('lookup-count').textContent = found.resources.length === 0
    ? 'nothing'
    : `${found.resources.length}${found.next_cursor === null ? '' : '+'} resource(s)`
  const body = $('lookup-table').tBodies[0]
  body.replaceChildren()
  for (const r of found.resources) {
    const row = el('tr')
    const id = el('td')
    id.append(el('code', r.id))
    row.append(el('td', r.kind), id, el('td', when(r.labeled_at)))
    body.append(row)
  }
  $('lookup-table').hidden = found.resources.length === 0
  $('lookup-result').hidden = false
}

async function watch (deletionId) {
  for (;;) {
    const d = await call('GET', `/api/deletions/${encodeURIComponent(deletionId)}`)
    const failing = Object.entries(d.progress.failures).map(([kind, f]) => `${kind}: ${f.error}`).join('; ')
    $('delete-status').textContent = d.status === 'completed'
      ? `Deletion ${d.deletion_id} completed: erased ${counts(d.erased)}.`
      : `Deletion ${d.deletion_id} running: erased ${counts(d.erased)}, ${d.progress.remaining_labels} label(s) to go${failing === '' ? '' : ` — stuck: ${failing}`}.`
    $('delete-status').dataset.status = d.status
    if (d.status === 'completed') break
    await new Promise((resolve) => setTimeout(resolve, WATCH_MS))
  }
  await refreshList()
  if (lookedUp !== null) await lookUp(lookedUp, true) // what is left of the customer: nothing
}

async function deleteLookedUp () {
  $('confirm').hidden = true
  $('delete-start').hidden = true
  const customerId = lookedUp
  const d = await call('POST', '/api/deletions', { customer_id: customerId })
  $('delete-status').textContent = `Deletion ${d.deletion_id} recorded.`
  await refreshList()
  await watch(d.deletion_id)
}

$('sign-in').addEventListener('submit', (event) => {
  event.preventDefault()
  $('sign-in-error').textContent = ''
  call('POST', '/api/session', { api_key: $('api-key').value })
    .then(showApp)
    .catch((err) => { $('sign-in-error').textContent = err.status === 401 ? 'That API key belongs to no service instance.' : err.message })
})

$('sign-out').addEventListener('click', () => {
  call('DELETE', '/api/session').catch(() => {}).finally(() => showSignIn('Signed out.'))
})

$('lookup').addEventListener('submit', (event) => {
  event.preventDefault()
  $('delete-start').hidden = false
  lookUp($('customer-id').value).catch((err) => { $('lookup-error').textContent = err.message })
})

$('delete-start').addEventListener('click', () => {
  $('confirm-customer').textContent = lookedUp
  $('confirm').hidden = false
})
$('delete-cancel').addEventListener('click', () => { $('confirm').hidden = true })
$('delete-confirm').addEventListener('click', () => {
  deleteLookedUp().catch((err) => { $('lookup-error').textContent = err.message })
})

for (const tab of document.querySelectorAll('.tab')) tab.addEventListener('click', () => selectTab(tab.dataset.status))
$('more').addEventListener('click', () => { refreshList(true).catch(() => {}) })

// A session that is still live (a reload) goes straight to the console.
call('GET', '/api/session').then(showApp).catch(() => showSignIn(''))
