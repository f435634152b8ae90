// A fake of the imports Spoke provides, for unit tests in plain Node.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SECRET = 'test-secret';
/** What the fake vendor answers, and every request sent to it. */
export const vendor = { status: 200, headers: [], body: '{}', sent: [] };

export function send(request) {
  vendor.sent.push(request);
  return { status: vendor.status, headers: vendor.headers, body: new TextEncoder().encode(vendor.body) };
}

export function verifyHmacSha256(field, message, signature, encoding) {
  if (field !== 'webhook_secret' || encoding !== 'hex') return false;
  const want = createHmac('sha256', SECRET).update(message).digest();
  const got = Buffer.from(signature, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

export function log(_level, _message) {}
