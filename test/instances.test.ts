import { test } from 'tap'
import { apiKeyInstances, errors } from '../index.js'

test('apiKeyInstances: Basic apikey:<key>, Bearer <key>, WebSocket query tokens', async (t) => {
  const resolve = apiKeyInstances({ keys: { k1: 'one', k2: 'two' } })
  const basic = (user: string, key: string) => ({ headers: { authorization: 'Basic ' + Buffer.from(`${user}:${key}`).toString('base64') } })
  t.equal(resolve(basic('apikey', 'k1')), 'one')
  t.equal(resolve(basic('apikey', 'k2')), 'two')
  t.equal(resolve(basic('apikey', 'k3')), null, 'unknown key')
  t.equal(resolve(basic('admin', 'k1')), null, 'the user name must be apikey')
  t.equal(resolve({ headers: { authorization: 'Basic ' + Buffer.from('apikeyk1').toString('base64') } }), null, 'no colon')
  t.equal(resolve({ headers: { authorization: 'Bearer k2' } }), 'two')
  t.equal(resolve({ headers: { authorization: 'bearer  k1 ' } }), 'one', 'scheme is case-insensitive')
  t.equal(resolve({ headers: { authorization: 'Digest k1' } }), null)
  t.equal(resolve({ headers: { authorization: 'Bearer' } }), null)
  t.equal(resolve({ headers: { authorization: 'Bearer ' + 'x'.repeat(5000) } }), null, 'over-long credentials')
  t.equal(resolve({ headers: {} }), null, 'no credentials')
  t.equal(resolve({ headers: { upgrade: 'websocket' }, url: '/v1/recognize?access_token=k1' }), 'one')
  t.equal(resolve({ headers: { upgrade: 'websocket' }, url: '/v1/recognize?watson-token=k2' }), 'two')
  t.equal(resolve({ headers: {}, url: '/v1/recognize?access_token=k1' }), null, 'query tokens only on upgrades')
  t.equal(resolve({ headers: { upgrade: 'websocket' }, url: '/v1/recognize' }), null)
  const strict = apiKeyInstances({ keys: { k1: 'one' }, queryTokens: false })
  t.equal(strict({ headers: { upgrade: 'websocket' }, url: '/x?access_token=k1' }), null)
})

test('apiKeyInstances rejects bad tables at startup', async (t) => {
  for (const bad of [undefined, {}, { keys: {} }, { keys: { '': 'x' } }, { keys: { k: '' } }]) {
    t.throws(() => apiKeyInstances(bad as never), errors.FST_CUSTOMER_DATA_INVALID_OPTION)
  }
})
