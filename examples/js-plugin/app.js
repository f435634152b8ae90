// A Spoke connector in JavaScript for the fictional vendor "Acme Items".
//
// Built with componentize-js (StarlingMonkey) against the `connector` world
// of spoke:connector@0.1.0; see README.md for the one build command and the
// flags it needs. The module's named exports are the world's exports
// (`describe`, `invoke`, `handleWebhook`: WIT kebab-case becomes camelCase);
// imports are ES modules named after the WIT interfaces. Records are plain
// objects with camelCase fields, enums are their kebab-case strings,
// variants are `{ tag, val }`, `option<T>` is the value or `undefined`.
// An error is returned by throwing the WIT `error` record (see `fail`).
import { send } from 'spoke:connector/http@0.1.0';
import { verifyHmacSha256 } from 'spoke:connector/auth@0.1.0';
import { log } from 'spoke:connector/log@0.1.0';

// The connector's name: `plugin = "..."` in spoke.toml and the prefix of its
// webhook route (/hooks/NAME). `spoke new` replaces it.
const NAME = 'jsexample';
const VERSION = '0.1.0';

const LIST_ITEMS_SCHEMA = {
  type: 'object',
  properties: {
    status: { type: 'string', enum: ['open', 'done'] },
    limit: { type: 'integer', minimum: 1, maximum: 100 },
  },
  additionalProperties: false,
};
const CREATE_ITEM_SCHEMA = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', minLength: 1 }, quantity: { type: 'integer', minimum: 1 } },
  additionalProperties: false,
};

/** The WIT `error` record. Thrown from an export whose WIT result is
 * `result<_, error>`, it becomes that result's `err`. */
class ConnectorError extends Error {
  constructor(kind, message, extra = {}) {
    super(message);
    this.payload = { kind, message, vendorCode: extra.vendorCode, field: extra.field, retryAfterMs: extra.retryAfterMs, status: extra.status };
  }
}

function fail(kind, message, extra) {
  throw new ConnectorError(kind, message, extra);
}

/** The default mapping of a vendor's HTTP status to an error kind; a 400/422 is `vendor`, since the request was sent. */
function kindForStatus(status) {
  return { 401: 'unauthorized', 403: 'forbidden', 404: 'not-found', 409: 'conflict', 429: 'rate-limited' }[status] ?? 'vendor';
}

/** Refuse input the schema would refuse (type, required, enum, bounds), naming the field; nothing is sent. */
function parseInput(text, schema) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    fail('invalid-input', `the input is not JSON: ${e.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('invalid-input', 'the input must be a JSON object');
  const props = schema.properties ?? {};
  for (const field of schema.required ?? []) {
    if (!(field in value)) fail('invalid-input', `${field} is required`, { field });
  }
  for (const [field, v] of Object.entries(value)) {
    const rule = props[field];
    if (!rule) {
      if (schema.additionalProperties === false) fail('invalid-input', `${field} is not a known field (known: ${Object.keys(props).join(', ')})`, { field });
      continue;
    }
    const ok = { string: typeof v === 'string', integer: Number.isInteger(v) }[rule.type] ?? true;
    if (!ok) fail('invalid-input', `${field} must be a ${rule.type}, got ${JSON.stringify(v)}`, { field });
    if (rule.enum && !rule.enum.includes(v)) fail('invalid-input', `${field} must be one of ${rule.enum.map((x) => JSON.stringify(x)).join(', ')}`, { field });
    if ((rule.minimum !== undefined && v < rule.minimum) || (rule.maximum !== undefined && v > rule.maximum)) {
      fail('invalid-input', `${field} must be between ${rule.minimum} and ${rule.maximum}`, { field });
    }
    if (rule.minLength !== undefined && v.length < rule.minLength) fail('invalid-input', `${field} must not be empty`, { field });
  }
  return value;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One request to the vendor through the host; a non-2xx answer becomes an error with the vendor's own message. */
function request(method, path, query = [], body = undefined) {
  const headers = [['accept', 'application/json']];
  if (body !== undefined) headers.push(['content-type', 'application/json']);
  // An import's `result<_, error>` err arrives as a thrown value whose `payload` is the error record.
  let resp;
  try {
    resp = send({ method, path, query, headers, body: body === undefined ? undefined : encoder.encode(JSON.stringify(body)), auth: ['api-key'] });
  } catch (e) {
    if (e && e.payload) throw new ConnectorError(e.payload.kind, e.payload.message, e.payload);
    throw e;
  }
  const text = decoder.decode(resp.body);
  if (resp.status < 200 || resp.status > 299) {
    let message = text;
    try {
      message = JSON.parse(text).error ?? text;
    } catch (_) {}
    const retry = resp.headers.find(([k]) => k === 'retry-after');
    const retryAfterMs = retry && /^\d+$/.test(retry[1].trim()) ? BigInt(retry[1].trim()) * 1000n : undefined;
    fail(kindForStatus(resp.status), `acme answered ${resp.status}: ${message}`, { status: resp.status, vendorCode: String(resp.status), retryAfterMs });
  }
  try {
    return JSON.parse(text);
  } catch (_) {
    fail('internal', `acme answered ${resp.status} with a body that is not JSON: ${text.slice(0, 200)}`, { status: resp.status });
  }
}

function listItems(input) {
  const query = ['status', 'limit'].filter((k) => k in input).map((k) => [k, String(input[k])]);
  const answer = request('get', '/items', query);
  // Lenient reading: once the vendor answered 2xx, a missing list is an empty one.
  const items = Array.isArray(answer) ? answer : answer?.items;
  return { items: items ?? [] };
}

function createItem(input) {
  return request('post', '/items', [], { name: input.name, quantity: input.quantity ?? 1 });
}

const OPERATIONS = {
  list_items: { method: 'get', path: '/items', description: 'Items, optionally by status', schema: LIST_ITEMS_SCHEMA, handler: listItems, idempotent: true },
  create_item: { method: 'post', path: '/items', description: 'Create an item', schema: CREATE_ITEM_SCHEMA, handler: createItem, idempotent: false },
};

export function describe() {
  return {
    name: NAME,
    version: VERSION,
    vendor: 'Acme Items',
    description: 'Example connector written in JavaScript (componentize-js)',
    baseUrls: [{ key: 'default', url: 'https://api.acme.example' }],
    authSchemes: [{ name: 'api-key', description: 'the X-Api-Key header', method: { tag: 'headers', val: [['x-api-key', 'api_key']] }, optional: false }],
    ratePolicies: [{ name: 'general', description: '60 requests per minute', operations: [], windows: [{ limit: 60, seconds: 60 }], headers: [], penaltySeconds: [] }],
    operations: Object.entries(OPERATIONS).map(([name, op]) => ({
      name,
      description: op.description,
      method: op.method,
      path: op.path,
      inputSchema: JSON.stringify(op.schema),
      outputSchema: '{"type":"object"}',
      idempotent: op.idempotent,
      paged: false,
    })),
    webhookTopics: [{ name: 'ITEM_CHANGED', description: 'An item was created or changed' }],
  };
}

export function invoke(operation, input) {
  const op = OPERATIONS[operation];
  if (!op) fail('unsupported', `no operation "${operation}" (known: ${Object.keys(OPERATIONS).join(', ')})`);
  return JSON.stringify(op.handler(parseInput(input, op.schema)));
}

export function handleWebhook(received) {
  const signature = received.headers.find(([k]) => k === 'x-signature')?.[1];
  if (!signature) fail('unauthorized', 'no x-signature header');
  // The host holds the secret; the guest only asks whether the signature matches.
  if (!verifyHmacSha256('webhook_secret', received.body, signature, 'hex')) {
    fail('unauthorized', 'x-signature does not match the body (HMAC-SHA256 with webhook_secret)');
  }
  let body;
  try {
    body = JSON.parse(decoder.decode(received.body));
  } catch (e) {
    fail('invalid-input', `the webhook body is not JSON: ${e.message}`);
  }
  if (!body || body.id === undefined || typeof body.item !== 'object' || body.item === null) fail('invalid-input', 'the webhook body is not an Acme item event (needs id and item)');
  log('debug', `item event ${body.id}`);
  return [{ id: String(body.id), topic: 'ITEM_CHANGED', occurredAt: body.at ?? undefined, subject: body.item.id === undefined ? undefined : String(body.item.id), payload: JSON.stringify(body.item) }];
}
