// Unit tests of app.js in plain Node, without a host: `npm test`.
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { vendor, SECRET } from './host.mjs';
import { describe, invoke, handleWebhook } from '../app.js';

beforeEach(() => Object.assign(vendor, { status: 200, headers: [], body: '{}', sent: [] }));

/** The WIT error an export returned (thrown, with the record as `payload`). */
function failing(call) {
  try {
    call();
  } catch (e) {
    assert.ok(e.payload, `not a WIT error: ${e}`);
    return e.payload;
  }
  assert.fail('expected an error');
}

test('describe lists each operation with its schema', () => {
  const m = describe();
  assert.deepEqual(m.operations.map((o) => o.name).sort(), ['create_item', 'list_items']);
  for (const o of m.operations) JSON.parse(o.inputSchema);
});

test('list_items sends the filter as query', () => {
  vendor.body = '{"items": [{"id": 1}]}';
  assert.deepEqual(JSON.parse(invoke('list_items', '{"status": "open"}')), { items: [{ id: 1 }] });
  const r = vendor.sent[0];
  assert.deepEqual([r.method, r.path, r.query, r.auth], ['get', '/items', [['status', 'open']], ['api-key']]);
});

test('bad input is refused before anything is sent', () => {
  let e = failing(() => invoke('create_item', '{}'));
  assert.deepEqual([e.kind, e.field], ['invalid-input', 'name']);
  e = failing(() => invoke('list_items', '{"status": "lost"}'));
  assert.match(e.message, /"open"/);
  assert.equal(vendor.sent.length, 0);
});

test('vendor errors keep status and message', () => {
  Object.assign(vendor, { status: 429, body: '{"error": "slow down"}', headers: [['retry-after', '3']] });
  const e = failing(() => invoke('create_item', '{"name": "x"}'));
  assert.deepEqual([e.kind, e.status, e.retryAfterMs], ['rate-limited', 429, 3000n]);
  assert.match(e.message, /slow down/);
});

test('a webhook is verified, then normalized', () => {
  const body = new TextEncoder().encode('{"id": "evt-1", "item": {"id": 7, "name": "x"}}');
  const good = createHmac('sha256', SECRET).update(body).digest('hex');
  const [event] = handleWebhook({ method: 'POST', path: '', query: '', headers: [['x-signature', good]], body });
  assert.deepEqual([event.id, event.topic, event.subject], ['evt-1', 'ITEM_CHANGED', '7']);
  const e = failing(() => handleWebhook({ method: 'POST', path: '', query: '', headers: [['x-signature', '00']], body }));
  assert.equal(e.kind, 'unauthorized');
});
