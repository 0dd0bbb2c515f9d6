import http from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLedger } from '../lib/ledger/ledger.js';
import { apiClient, EMBEDDING_MODEL, MODEL, useCoordinator, waitForStatus } from './helpers/coordinator.js';

// Property-based fuzz of every REST route: generated hostile bodies (unicode, NUL, lone surrogates, huge
// numbers, deep nesting, wrong types, raw bytes), query strings, path parameters, headers and methods,
// sent over HTTP as admin, client, node owner, node and without a valid key. No answer may be a 5xx,
// every 4xx is the documented error body, and afterwards the coordinator still runs a task end to end.

const REQUESTS = 5_000;
/** The coordinator's default MAX_BODY_BYTES. */
const MAX_BODY_BYTES = 1_048_576;

/** A JSON fragment written as is: numbers no JavaScript number can hold, nesting no walker survives. */
class Raw {
  constructor(readonly text: string) {}
  [fc.toStringMethod]() {
    return this.text.length > 80
      ? `Raw(${this.text.length}: ${this.text.slice(0, 40)}…)`
      : `Raw(${this.text})`;
  }
}
type Tree = null | boolean | number | string | Raw | Tree[] | { [key: string]: Tree };

/** JSON text of a tree; strings go through JSON.stringify, so lone surrogates arrive as `\ud800`. */
function toJson(t: Tree): string {
  if (t instanceof Raw) return t.text;
  if (Array.isArray(t)) return `[${t.map(toJson).join(',')}]`;
  if (t !== null && typeof t === 'object') {
    return `{${Object.entries(t)
      .map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(t) ?? 'null';
}

// --- leaves

const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: codeUnit, maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 10 }),
  fc.constantFrom(
    '\u0000',
    'a\u0000b',
    '\ud800',
    'x\udfffy',
    '\ud83d',
    '\u202e',
    '\ufeff',
    '',
    ' ',
    '\\',
    '"',
    '%00',
    '../..',
    'null',
    '__proto__',
    'x'.repeat(600),
  ),
);
const hugeNumber = fc
  .constantFrom(
    '1e400',
    '-1e400',
    '1e-400',
    '123456789012345678901234567890',
    '9223372036854775807',
    '9223372036854775808',
    '-9223372036854775809',
    '18446744073709551616',
    '-0',
    '2147483648',
    '9007199254740993',
    '0.30000000000000004',
  )
  .map((t) => new Raw(t));
const number: fc.Arbitrary<Tree> = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constantFrom(0, -1, 1, 2 ** 31, 2 ** 53, Number.MAX_SAFE_INTEGER, -Number.MAX_VALUE),
  hugeNumber,
);
/** Nesting far past any limit, as a whole value: `[[[…]]]` or `{"a":{"a":…}}`. */
const deepNesting = fc
  .tuple(fc.integer({ min: 60, max: 12_000 }), fc.constantFrom(['[', ']'], ['{"a":', '}']))
  .map(([n, [open, close]]) => new Raw(open.repeat(n) + (open === '[' ? '' : '1') + close.repeat(n)));
const leaf: fc.Arbitrary<Tree> = fc.oneof(hostileString, number, fc.boolean(), fc.constant(null));

/** Any JSON, with hostile strings as keys and values. */
const { tree } = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { arbitrary: leaf, weight: 6 },
    { arbitrary: fc.array(tie('tree'), { maxLength: 5 }), weight: 2 },
    { arbitrary: fc.dictionary(hostileString, tie('tree'), { maxKeys: 5 }), weight: 2 },
    { arbitrary: deepNesting, weight: 1 },
  ),
}));

/** `arb` in one of `oneIn` cases, else null (fc.option's `freq` is the odds of null, the other way round). */
const sometimes = <T>(arb: fc.Arbitrary<T>, oneIn: number) =>
  fc.oneof({ arbitrary: fc.constant(null), weight: oneIn - 1 }, { arbitrary: arb, weight: 1 });

/** Usually a plausible value, sometimes anything at all. */
const field = (plausible: fc.Arbitrary<Tree>) =>
  fc.oneof({ arbitrary: plausible, weight: 12 }, { arbitrary: tree, weight: 1 });
const text = field(fc.string({ maxLength: 20 }));
const amount = field(
  fc.oneof(
    fc.bigInt({ min: 1n, max: 1_000_000n }).map(String),
    fc.bigInt({ min: 0n, max: 2n ** 63n + 100n }).map(String),
    fc.integer({ min: -5, max: 10_000 }),
  ),
);
/** A plausible body: required fields usually there, optional ones sometimes, rarely an unknown one. */
const body = (
  required: Record<string, fc.Arbitrary<Tree>>,
  optional: Record<string, fc.Arbitrary<Tree>> = {},
) =>
  fc
    .tuple(
      fc.record(required),
      fc.record(optional, { requiredKeys: [] }),
      sometimes(fc.nat(), 6),
      sometimes(fc.tuple(hostileString, tree), 10),
    )
    .map(([req, opt, drop, extra]) => {
      const b = { ...req, ...opt } as Record<string, Tree>;
      const names = Object.keys(req);
      // Sometimes a required field is missing.
      if (drop !== null && names.length > 0) delete b[names[drop % names.length] as string];
      if (extra) b[extra[0]] = extra[1];
      return b as Tree;
    });

// --- plausible bodies per route

const modelName = field(fc.constantFrom(MODEL.name, EMBEDDING_MODEL.name, 'fuzz-model'));
const modelRef = field(fc.record({ name: modelName, version: field(fc.constantFrom('1', '2')) }));
/** A model with input of its task type most of the time (so tasks get admitted), any mix otherwise. */
const modelAndInput = fc.oneof(
  fc.record({
    model: field(fc.constant(MODEL.name)),
    input: field(
      fc.oneof(
        fc.record({ prompt: text }),
        fc.record({
          messages: fc.array(fc.record({ role: field(fc.constant('user')), content: text }), {
            minLength: 1,
            maxLength: 3,
          }),
        }),
      ),
    ),
  }),
  fc.record({
    model: field(fc.constant(EMBEDDING_MODEL.name)),
    input: field(fc.oneof(fc.record({ text }), fc.record({ texts: fc.array(text, { maxLength: 3 }) }))),
  }),
  fc.record({ model: modelName, input: tree }),
);
const BODIES = {
  account: body({ name: text }),
  key: body({}, { label: text }),
  model: body(
    {
      name: field(fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/)),
      version: field(fc.constantFrom('1', '2', 'v3')),
      taskType: field(fc.constantFrom('text_generation', 'embedding')),
      maxInputBytes: field(fc.integer({ min: -1, max: 200_000_000 })),
      maxOutputTokens: field(fc.integer({ min: -1, max: 2_000_000 })),
    },
    {
      pricePerRequest: amount,
      pricePerInputToken: amount,
      pricePerOutputToken: amount,
      active: field(fc.boolean()),
    },
  ),
  modelPatch: body(
    {},
    {
      maxInputBytes: field(fc.integer({ min: -1, max: 200_000_000 })),
      maxOutputTokens: field(fc.integer({ min: -1, max: 2_000_000 })),
      pricePerRequest: amount,
      pricePerInputToken: amount,
      pricePerOutputToken: amount,
      active: field(fc.boolean()),
    },
  ),
  register: body(
    {
      name: text,
      models: field(fc.array(modelRef, { minLength: 1, maxLength: 3 })),
      capacity: field(fc.integer({ min: -1, max: 2_000 })),
    },
    { hardware: tree },
  ),
  heartbeat: body(
    {
      load: field(fc.double({ min: -1, max: 2 })),
      inflight: field(fc.oneof(fc.integer({ min: -1, max: 100 }), number)),
    },
    {
      metrics: field(
        fc.record({ gpuUtil: number, cpuUtil: number, memUsedMb: number }, { requiredKeys: [] }),
      ),
    },
  ),
  task: fc
    .tuple(
      modelAndInput,
      body(
        // Short queue deadlines: no node serves the fuzz, and every waiting task is a workflow polling.
        { queueTimeoutMs: field(fc.integer({ min: 1_000, max: 3_000 })) },
        {
          version: field(fc.constantFrom('1', '1', '1', '2')),
          params: field(
            fc.record(
              {
                maxTokens: field(fc.integer({ min: 1, max: 512 })),
                temperature: field(fc.double({ min: 0, max: 2, noNaN: true })),
                stop: field(fc.array(text, { maxLength: 3 })),
                seed: field(fc.integer()),
              },
              { requiredKeys: [] },
            ),
          ),
          maxPrice: amount,
          priority: field(fc.integer({ min: 0, max: 9 })),
        },
      ),
    )
    .map(([mi, rest]) => ({ ...mi, ...(rest as Record<string, Tree>) }) as Tree),
  withdraw: body({ amount, destination: text }),
  topup: body({ clientId: field(fc.constant('@client')), amount }, { note: text }),
  none: fc.constant({} as Tree),
} satisfies Record<string, fc.Arbitrary<Tree>>;
type BodyKind = keyof typeof BODIES;

// --- routes, path parameters, query strings

const PRINCIPALS = ['admin', 'client', 'owner', 'node', 'none', 'unknown key', 'garbage'] as const;
type Principal = (typeof PRINCIPALS)[number];
const ANY: Principal[] = ['admin', 'client', 'owner', 'node'];

/** Method, path (`@kind` is a generated id of that kind), body, and the roles the route serves. */
const ROUTES: Array<[string, string, BodyKind, Principal[]]> = [
  ['POST', '/api/admin/clients', 'account', ['admin']],
  ['POST', '/api/admin/node-owners', 'account', ['admin']],
  ['POST', '/api/admin/clients/@client/keys', 'key', ['admin']],
  ['POST', '/api/admin/node-owners/@owner/keys', 'key', ['admin']],
  ['POST', '/api/admin/keys/@key/revoke', 'none', ['admin']],
  ['POST', '/api/models', 'model', ['admin']],
  ['GET', '/api/models', 'none', ANY],
  ['GET', '/api/models/@model', 'none', ANY],
  ['PATCH', '/api/models/@model', 'modelPatch', ['admin']],
  ['POST', '/api/nodes/register', 'register', ['owner']],
  ['GET', '/api/nodes', 'none', ['admin', 'owner', 'node']],
  ['GET', '/api/nodes/@node', 'none', ['admin', 'owner', 'node']],
  ['POST', '/api/nodes/@node/heartbeat', 'heartbeat', ['node']],
  ['GET', '/api/nodes/@node/metrics', 'none', ['admin', 'owner', 'node']],
  ['POST', '/api/tasks', 'task', ['client']],
  ['GET', '/api/tasks', 'none', ['client', 'admin']],
  ['GET', '/api/tasks/@task', 'none', ['client', 'admin']],
  ['GET', '/api/tasks/@task/result', 'none', ['client', 'admin']],
  ['POST', '/api/tasks/@task/cancel', 'none', ['client', 'admin']],
  ['GET', '/api/tokens/balance/@account', 'none', ANY],
  ['GET', '/api/tokens/history/@account', 'none', ANY],
  ['POST', '/api/tokens/withdraw', 'withdraw', ['node']],
  ['GET', '/api/tokens/withdrawals/@withdrawal', 'none', ['admin', 'owner', 'node']],
  ['POST', '/api/tokens/topup', 'topup', ['admin']],
  ['GET', '/api/stats', 'none', ['admin']],
  ['GET', '/metrics', 'none', ANY],
  ['GET', '/api/@junk', 'none', ANY],
  ['POST', '/api/admin/@junk/@junk', 'account', ['admin']],
];
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'];

/** Percent-encode everything but unreserved characters (lone surrogates become U+FFFD's bytes). */
const encode = (s: string) =>
  [...Buffer.from(s, 'utf8')]
    .map((b) => {
      const c = String.fromCharCode(b);
      return /[A-Za-z0-9_.~-]/.test(c) ? c : `%${b.toString(16).padStart(2, '0')}`;
    })
    .join('');
/** Escapes no UTF-8 decoder accepts, or that decode to what PostgreSQL refuses. */
const rawEscape = fc.constantFrom(
  '%00',
  '%ED%A0%80',
  '%C0%80',
  '%FF',
  '%',
  '%zz',
  '%2F',
  '%2e%2e',
  '%E0%A4%A',
);
const hostileSegment = fc.oneof(
  hostileString.map(encode),
  rawEscape,
  fc.uuid().map((u) => u.toUpperCase()),
  fc.uuid(),
  fc.stringMatching(/^t_[a-z0-9]{26}$/),
);
const cursorLike = fc.oneof(
  fc.base64String({ maxLength: 80 }),
  fc
    .tuple(
      fc.oneof(
        fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        hostileString,
      ),
      hostileString,
    )
    .map((v) => Buffer.from(JSON.stringify(v)).toString('base64url')),
);
const queryValue = fc.oneof(
  hostileString.map(encode),
  rawEscape,
  fc.constantFrom('1', '0', '-1', '101', '1e400', 'NaN', '0x10', 'true', 'queued', 'topup,hold', 'platform'),
  fc
    .constantFrom(
      '0000-01-01T00:00:00Z',
      '0001-01-01T00:00:00+01:00',
      '9999-12-31T23:59:59Z',
      '2026-01-01T00:00:00+14:00',
      '+275760-09-13T00:00:00Z',
    )
    .map(encode),
  cursorLike.map(encode),
);
const queryKey = fc.oneof(
  { arbitrary: fc.constantFrom('limit', 'cursor', 'status', 'since', 'until', 'type', 'active'), weight: 4 },
  { arbitrary: hostileString.map(encode), weight: 1 },
);
const query = fc
  .array(fc.tuple(queryKey, queryValue), { maxLength: 4 })
  .map((pairs) => (pairs.length ? `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}` : ''));

// --- headers and bodies

/** Characters a header value may carry on the wire (not NUL, CR, LF; Latin-1 only). */
const latin1 = fc
  .integer({ min: 0x21, max: 0xff })
  .filter((c) => c !== 0x7f && (c < 0x80 || c > 0xa0))
  .map((c) => String.fromCharCode(c));
const headerText = fc.string({ unit: latin1, minLength: 1, maxLength: 200 });

/** A request body, shown shortened in counterexamples (some are a megabyte). */
class Body {
  constructor(readonly content: string | Uint8Array) {}
  [fc.toStringMethod]() {
    const head =
      typeof this.content === 'string' ? this.content.slice(0, 200) : [...this.content.slice(0, 64)];
    return `Body(${this.content.length}: ${JSON.stringify(head)})`;
  }
}

/** The body of a request to a route taking `kind`, or undefined for none. */
const rawBody = (kind: BodyKind): fc.Arbitrary<Body | undefined> =>
  fc
    .oneof<Array<fc.MaybeWeightedArbitrary<string | Uint8Array | undefined>>>(
      { arbitrary: BODIES[kind].map(toJson), weight: 20 },
      { arbitrary: tree.map(toJson), weight: 3 },
      { arbitrary: fc.constant(undefined), weight: 1 },
      { arbitrary: hostileString, weight: 1 },
      { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 },
      {
        arbitrary: fc
          .constantFrom(99_999, 100_000, 100_001, 150_000)
          .map((n) => `{"name":"x","hardware":{"k":[${'0,'.repeat(n)}0]}}`),
        weight: 1,
      },
      {
        arbitrary: fc.constantFrom(
          '{',
          '{"name":',
          '\ufeff{}',
          '{"name":"x"}garbage',
          'x'.repeat(MAX_BODY_BYTES + 1),
        ),
        weight: 1,
      },
    )
    .map((content) => (content === undefined ? undefined : new Body(content)));

const request = fc
  .record({
    route: fc.constantFrom(...ROUTES),
    otherMethod: sometimes(fc.constantFrom(...METHODS), 12),
    /** A real id of the path's kind when a number (most of the time), else a generated segment. */
    params: fc.array(fc.oneof({ arbitrary: fc.nat(), weight: 3 }, { arbitrary: hostileSegment, weight: 1 }), {
      minLength: 2,
      maxLength: 2,
    }),
    query: fc.oneof({ arbitrary: fc.constant(''), weight: 2 }, { arbitrary: query, weight: 1 }),
    /** The route's own role most of the time, any principal (or none) otherwise. */
    ownRole: fc.boolean(),
    roleIndex: fc.nat(),
    principal: fc.constantFrom(...PRINCIPALS),
    garbageAuth: headerText,
    idempotencyKey: fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 6 },
      { arbitrary: fc.uuid(), weight: 2 },
      { arbitrary: fc.oneof(headerText, fc.constant('k'.repeat(129))), weight: 1 },
    ),
    contentType: fc.oneof(
      { arbitrary: fc.constant('application/json'), weight: 20 },
      {
        arbitrary: fc.constantFrom(
          'text/plain',
          'application/problem+json',
          'application/json; charset=latin1',
          'multipart/form-data',
          '',
        ),
        weight: 1,
      },
      { arbitrary: headerText, weight: 1 },
    ),
    requestId: fc.option(headerText, { nil: undefined }),
  })
  .chain((r) => rawBody(r.route[2]).map((payload) => ({ ...r, payload })));
type Request = typeof request extends fc.Arbitrary<infer R> ? R : never;

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
/** Requests sent again on a fresh connection after their keep-alive socket was closed under them. */
let staleSockets = 0;

/**
 * One request over node:http, as raw as HTTP allows (fetch would normalise the path and refuse some
 * headers). A body the server does not read (a refusal before validation, a route without a body, a
 * GET) is drained after the answer and the connection closed if that takes long, without a
 * `Connection: close`: a request that meanwhile went out on the same keep-alive socket is cut
 * (ECONNRESET, or its answer aborted). Such a request is sent again on a fresh connection, as Node's
 * documentation advises for reused sockets (`req.reusedSocket`); any failure on a fresh connection
 * fails the test.
 */
function send(
  base: string,
  req: {
    method: string;
    url: string;
    headers: Record<string, string>;
    body: string | Uint8Array | undefined;
  },
): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(base);
  const bytes = req.body === undefined ? undefined : Buffer.from(req.body);
  const attempt = (fresh: boolean) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      let settled = false;
      const r = http.request(
        {
          host: hostname,
          port,
          method: req.method,
          path: req.url,
          agent: fresh || (bytes && bytes.length > MAX_BODY_BYTES) ? false : keepAlive,
          headers: { ...req.headers, ...(bytes ? { 'content-length': String(bytes.length) } : {}) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            if (res.complete)
              finish(null, { status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() });
            else fail(new Error('aborted'));
          });
          res.on('error', fail);
        },
      );
      function finish(err: Error | null, value?: { status: number; text: string }) {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve(value as { status: number; text: string });
      }
      function fail(err: Error) {
        if (settled) return;
        if (!fresh && r.reusedSocket) {
          settled = true;
          staleSockets++;
          resolve(attempt(true));
        } else finish(err);
      }
      r.on('error', fail);
      r.end(bytes);
    });
  return attempt(false);
}

describe('REST fuzz', () => {
  // Rate limits would answer most of the run with 429 (a 4xx, but no test of the routes behind it).
  const suite = useCoordinator({ RATE_LIMIT_PER_MINUTE: '10000000', RATE_LIMIT_IP_PER_MINUTE: '10000000' });
  const keys: Record<Principal, string | undefined> = {
    admin: undefined,
    client: undefined,
    owner: undefined,
    node: undefined,
    none: undefined,
    'unknown key': `ngk_0123456789ab_${'A'.repeat(43)}`,
    garbage: undefined,
  };
  /** Real ids of each kind that path parameters draw from. */
  const pools: Record<string, string[]> = { junk: ['nope', 'clients', ''] };
  let clientId = '';

  beforeAll(async () => {
    const { admin } = suite.s;
    const as = (key: string | undefined) => apiClient(suite.coordinator.url, key);
    keys.admin = suite.env.env.ADMIN_API_KEY;
    // Accounts of the fuzz's own, so the seeded ones stay as the end-to-end task needs them.
    const client = await admin.post('/api/admin/clients', { name: 'fuzz client' });
    const owner = await admin.post('/api/admin/node-owners', { name: 'fuzz owner' });
    clientId = client.body.client.id;
    keys.client = client.body.apiKey;
    keys.owner = owner.body.apiKey;
    // A spare key the fuzz may revoke.
    const spare = await admin.post(`/api/admin/clients/${clientId}/keys`, { label: 'spare' });
    const funds = await admin.post(
      '/api/tokens/topup',
      { clientId, amount: '1000000000' },
      { 'Idempotency-Key': 'fuzz-funds' },
    );
    expect(funds.status).toBe(201);
    const node = await as(keys.owner).post('/api/nodes/register', {
      name: 'fuzz node',
      models: [MODEL],
      capacity: 1,
    });
    expect(node.status).toBe(201);
    keys.node = node.body.nodeKey;
    const nodeId = node.body.node.id as string;
    // Earnings for the node, so some withdrawals go through.
    await createLedger(suite.coordinator.services.prisma).post({
      idempotencyKey: `fuzz-earnings:${nodeId}`,
      type: 'topup',
      legs: [
        { from: { kind: 'external_topups' }, to: { kind: 'node', ownerId: nodeId }, amount: 1_000_000n },
      ],
    });
    const withdrawal = await as(keys.node).post(
      '/api/tokens/withdraw',
      { amount: '100', destination: 'acct-1' },
      { 'Idempotency-Key': 'fuzz-withdrawal' },
    );
    expect(withdrawal.status, JSON.stringify(withdrawal.body)).toBe(202);
    const model = await admin.post('/api/models', {
      name: 'fuzz-model',
      version: '1',
      taskType: 'text_generation',
      maxInputBytes: 10_000,
      maxOutputTokens: 64,
      // Priced so that a task at priority 5 or more would hold more than 2^63 − 1 (422).
      pricePerRequest: '6000000000000000000',
    });
    expect(model.status).toBe(201);
    const task = await as(keys.client).post('/api/tasks', { model: MODEL.name, input: { prompt: 'x' } });
    expect(task.status).toBe(202);
    Object.assign(pools, {
      client: [clientId],
      owner: [owner.body.nodeOwner.id],
      key: [spare.body.keyId],
      model: [model.body.model.id],
      node: [nodeId],
      task: [task.body.task.id],
      withdrawal: [withdrawal.body.withdrawal.id],
      account: [`client:${clientId}`, `client:${suite.s.clientAId}`, `node:${nodeId}`, 'platform'],
    });
  });
  afterAll(() => keepAlive.destroy());

  /** The method, URL, headers and body of a generated request. */
  function build(r: Request) {
    const [routeMethod, template, , roles] = r.route;
    const method = r.otherMethod ?? routeMethod;
    let n = 0;
    const path = template.replace(/@([a-z]+)/g, (_, kind: string) => {
      const p = r.params[n++ % r.params.length] as string | number;
      const pool = pools[kind] ?? [];
      return typeof p === 'number' ? encode(pool[p % pool.length] ?? '') : p;
    });
    const principal = r.ownRole ? (roles[r.roleIndex % roles.length] as Principal) : r.principal;
    const headers: Record<string, string> = {};
    const key = keys[principal];
    if (principal === 'garbage') headers.authorization = r.garbageAuth;
    else if (key) headers.authorization = `Bearer ${key}`;
    if (r.idempotencyKey !== undefined) headers['idempotency-key'] = r.idempotencyKey;
    if (r.requestId !== undefined) headers['x-request-id'] = r.requestId;
    // A GET or HEAD body is never read (the server drains it); a megabyte of it could outlast the
    // drain's time limit on this busy machine, and then the server drops the connection mid-answer.
    const oversize = (r.payload?.content.length ?? 0) > MAX_BODY_BYTES;
    const payload = oversize && (method === 'GET' || method === 'HEAD') ? undefined : r.payload?.content;
    if (payload !== undefined && r.contentType !== '') headers['content-type'] = r.contentType;
    const body = typeof payload === 'string' ? payload.replaceAll('@client', clientId) : payload;
    return { method, url: `${path}${r.query}`, headers, body, route: `${routeMethod} ${template}` };
  }

  it(`answers ${REQUESTS} hostile requests, each with a 4xx or success and never a 5xx`, {
    timeout: 240_000,
  }, async () => {
    const statuses = new Map<number, number>();
    /** Per route: answers that got past authentication, role and routing (not 401, 403, 404). */
    const reached = new Map<string, number>();
    let sent = 0;
    const recent: string[] = [];
    const started = Date.now();

    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const req = build(r);
        const body = req.body === undefined ? '-' : `${req.body.length}: ${String(req.body).slice(0, 120)}`;
        recent.push(
          `${req.method} ${req.url.slice(0, 200)} ${JSON.stringify(req.headers).slice(0, 300)} ${body}`,
        );
        if (recent.length > 4) recent.shift();
        let res: { status: number; text: string };
        try {
          res = await send(suite.coordinator.url, req);
        } catch (err) {
          throw new Error(`no answer (${String(err)}) after:\n${recent.join('\n')}`);
        }
        sent++;
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (![401, 403, 404].includes(res.status)) reached.set(req.route, (reached.get(req.route) ?? 0) + 1);
        const what = `${req.method} ${req.url.slice(0, 300)} → ${res.status} ${res.text.slice(0, 300)}`;
        if (res.status >= 500) throw new Error(`server error: ${what}`);
        if (res.status >= 400 && req.method !== 'HEAD') {
          // Every refusal is the documented error body with a code and a message.
          const parsed = JSON.parse(res.text) as { error?: { code?: unknown; message?: unknown } };
          if (typeof parsed.error?.code !== 'string' || typeof parsed.error.message !== 'string') {
            throw new Error(`undocumented error body: ${what}`);
          }
        }
      }),
      { numRuns: REQUESTS },
    );
    expect(sent).toBeGreaterThanOrEqual(REQUESTS);
    // Every route was exercised past its guards, not only refused at the door.
    for (const [method, template] of ROUTES) {
      if (template.includes('@junk')) continue;
      expect(reached.get(`${method} ${template}`) ?? 0, `${method} ${template}`).toBeGreaterThan(5);
    }
    const byStatus = Object.fromEntries([...statuses].sort(([a], [b]) => a - b));
    console.info(
      `fuzz: ${sent} requests in ${((Date.now() - started) / 1000).toFixed(1)} s (${staleSockets} resent after a stale keep-alive socket); ${JSON.stringify(byStatus)}`,
    );
    const health = await apiClient(suite.coordinator.url).get('/api/health');
    expect(health.status).toBe(200);
  });

  it('still runs a task end to end afterwards', async () => {
    await suite.node('after-fuzz');
    const client = apiClient(suite.coordinator.url, keys.client);
    const r = await client.post('/api/tasks', {
      model: MODEL.name,
      version: MODEL.version,
      input: { prompt: 'still here' },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const task = await waitForStatus(client, r.body.task.id, ['completed', 'failed', 'cancelled']);
    expect(task.status).toBe('completed');
    expect(task.result).toEqual({ text: expect.stringContaining('still here'), finishReason: 'stop' });
  });
});
