// Names reused across customers on the example server: a resource the host deleted or replaced
// is withdrawn from its old customer's labels, so that customer's deletion never reaches the new
// owner's resource of the same name (labels withdrawn after a host delete or a replace).
import { test } from 'tap'
import { createServer } from 'node:http'
import { once } from 'node:events'
import { AUTH, startExample } from './helpers/example.js'

const as = (customer?: string): Record<string, string> => customer === undefined ? AUTH : { ...AUTH, 'x-watson-metadata': `customer_id=${customer}` }

async function eraseCustomer (base: string, customer: string): Promise<Record<string, number>> {
  const res = await fetch(`${base}/v1/user_data?customer_id=${customer}`, { method: 'DELETE', headers: AUTH })
  return ((await res.json()) as { erased: Record<string, number> }).erased
}

test("X's word, corpus and callback deleted by the host; Y stores the same names; X's deletion leaves Y's", async (t) => {
  const { base } = await startExample(t)
  const hook = createServer((req, res) => res.end(new URL(req.url as string, 'http://x').searchParams.get('challenge_string')))
  hook.listen(0, '127.0.0.1')
  await once(hook, 'listening')
  t.teardown(() => { hook.close() })
  const callback = encodeURIComponent(`http://127.0.0.1:${(hook.address() as { port: number }).port}/hook`)
  const model = await (await fetch(`${base}/v1/customizations`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'm', base_model_name: 'en-US_BroadbandModel' }) })).json() as { customization_id: string }
  const lm = `${base}/v1/customizations/${model.customization_id}`
  const store = async (customer: string): Promise<void> => {
    t.equal((await fetch(`${lm}/words/hello`, { method: 'PUT', headers: { ...as(customer), 'content-type': 'application/json' }, body: '{}' })).status, 201)
    t.equal((await fetch(`${lm}/corpora/c1`, { method: 'POST', headers: { ...as(customer), 'content-type': 'text/plain' }, body: 'some words here' })).status, 201)
    t.equal((await fetch(`${base}/v1/register_callback?callback_url=${callback}`, { method: 'POST', headers: as(customer) })).status, 201)
  }

  await store('x')
  // The host deletes them through its own API, with no customer named.
  t.equal((await fetch(`${lm}/words/hello`, { method: 'DELETE', headers: AUTH })).status, 200)
  t.equal((await fetch(`${lm}/corpora/c1`, { method: 'DELETE', headers: AUTH })).status, 200)
  t.equal((await fetch(`${base}/v1/unregister_callback?callback_url=${callback}`, { method: 'POST', headers: AUTH })).status, 200)
  await store('y')

  t.same(await eraseCustomer(base, 'x'), {}, "X's deletion finds nothing of X left")
  t.equal((await fetch(`${lm}/words/hello`, { headers: AUTH })).status, 200, "Y's word is intact")
  t.equal((await fetch(`${lm}/corpora/c1`, { headers: AUTH })).status, 200, "Y's corpus is intact")
  t.same(await (await fetch(`${base}/v1/register_callback?callback_url=${callback}`, { method: 'POST', headers: AUTH })).json(), { status: 'already created', url: decodeURIComponent(callback) }, "Y's callback is still registered")
  t.same(await eraseCustomer(base, 'y'), { word: 1, corpus: 1, callback: 1 }, "Y's deletion erases Y's")
})

test("X's word replaced by Y's write of the same name: X's deletion leaves Y's word", async (t) => {
  const { base } = await startExample(t)
  const model = await (await fetch(`${base}/v1/customizations`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'm', base_model_name: 'en-US_BroadbandModel' }) })).json() as { customization_id: string }
  const words = `${base}/v1/customizations/${model.customization_id}/words`
  t.equal((await fetch(`${words}/shared`, { method: 'PUT', headers: { ...as('x'), 'content-type': 'application/json' }, body: '{}' })).status, 201)
  t.equal((await fetch(words, { method: 'POST', headers: { ...as('y'), 'content-type': 'application/json' }, body: JSON.stringify({ words: [{ word: 'shared', display_as: 'Y' }] }) })).status, 201)
  t.same(await eraseCustomer(base, 'x'), {}, 'the replaced word is no longer X\'s')
  t.match(await (await fetch(`${words}/shared`, { headers: AUTH })).json(), { word: 'shared', display_as: 'Y' }, "Y's word is intact")
})
