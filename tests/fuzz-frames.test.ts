import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type CoordinatorFrame, nodeFrame } from '../protocol/frames.js';
import { EMBEDDING_MODEL, MODEL, startNode, useCoordinator, waitForStatus } from './helpers/coordinator.js';
import { connectRawNode, type RawNode } from './helpers/raw-node.js';

/** Frames per run after the hello (plus PRE_HELLO before it): the brief asks for at least 5,000. */
const FRAMES = 5_000;
const PRE_HELLO = 300;
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;

// What a node can throw at the socket: hostile text, numbers and nesting in every field of every frame
// type, random attempt ids, invalid JSON, binary frames.
const hostileString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({
    unit: fc.constantFrom('a', 'Z', '\0', '\ud800', '\udfff', 'é', '😀', '"', '\\'),
    maxLength: 20,
  }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.constantFrom('', '\u0000', 'a\u0000b', '\ud83d', 'x'.repeat(3_000), 'hello', 'heartbeat'),
);
const hostileNumber = fc.oneof(
  fc.double(), // NaN and ±Infinity become null in JSON
  fc.integer(),
  fc.constantFrom(1e308, -1e308, 2 ** 53, 2 ** 53 + 2, 2 ** 31, 2 ** 31 - 1, -1, -0, 5e-324, 1e21),
);
const json = fc.jsonValue({ maxDepth: 3 });
const anything = fc.oneof(json, hostileString, hostileNumber);
const hostileJson = fc.oneof(
  json,
  fc.dictionary(hostileString, fc.oneof(hostileString, hostileNumber, json), { maxKeys: 4 }),
  fc.array(hostileString, { maxLength: 4 }),
);
const attemptIdArb = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_-]{1,30}:\d{1,3}$/), // well-formed, never one of this node's attempts
  hostileString,
  anything,
);
const modelArb = fc.oneof(
  fc.record({
    name: fc.oneof(fc.constantFrom(MODEL.name, EMBEDDING_MODEL.name, 'ghost'), hostileString),
    version: fc.oneof(fc.constant('1'), hostileString),
  }),
  anything,
);
const typeArb = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.constantFrom('hello', 'heartbeat', 'accept', 'reject', 'progress', 'result', 'error'),
  },
  { weight: 1, arbitrary: fc.oneof(fc.constantFrom('teleport', 'ack', 'assign', 'cancel', ''), anything) },
);
const objectFrame = fc.record(
  {
    v: fc.oneof({ weight: 9, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: anything }),
    type: typeArb,
    models: fc.oneof(fc.array(modelArb, { maxLength: 3 }), anything),
    capacity: fc.oneof(fc.integer({ min: 1, max: 4 }), hostileNumber, anything),
    hardware: fc.oneof(hostileJson, anything),
    agent: fc.oneof(fc.constant('fuzz/1'), hostileString),
    load: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), hostileNumber),
    inflight: fc.oneof(fc.nat(8), hostileNumber),
    metrics: fc.oneof(
      fc.record(
        {
          cpuUtil: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), hostileNumber),
          memUsedMb: fc.oneof(fc.nat(), hostileNumber),
          gpuUtil: hostileNumber,
        },
        { requiredKeys: [] },
      ),
      anything,
    ),
    attemptId: attemptIdArb,
    reason: fc.oneof(fc.string({ maxLength: 30 }), hostileString, anything),
    progress: fc.oneof(fc.double({ min: 0, max: 1, noNaN: true }), hostileNumber),
    message: fc.oneof(fc.string({ maxLength: 30 }), hostileString, anything),
    output: fc.oneof(hostileJson, anything),
    usage: fc.oneof(fc.record({ inputTokens: hostileNumber, outputTokens: hostileNumber }), anything),
  },
  { requiredKeys: ['type'] },
);
/** A field of a frame nested `depth` deep, as text (JSON.stringify would recurse that deep). */
const deepFrame = fc
  .record({
    type: fc.constantFrom('hello', 'result', 'heartbeat', 'progress'),
    field: fc.constantFrom('hardware', 'output', 'metrics', 'models'),
    depth: fc.oneof(fc.integer({ min: 60, max: 70 }), fc.integer({ min: 1_000, max: 10_000 })),
    open: fc.constantFrom('[', '{"a":'),
  })
  .map(({ type, field, depth, open }) => {
    const close = open === '[' ? ']' : '}';
    const nested = `${open.repeat(depth)}0${close.repeat(depth)}`;
    return `{"v":1,"type":"${type}","attemptId":"t_deep:1","capacity":1,"models":[{"name":"${MODEL.name}","version":"1"}],"load":0,"inflight":0,"${field}":${nested}}`;
  });

type Sent =
  | { kind: 'json'; value: unknown }
  | { kind: 'text'; text: string }
  | { kind: 'binary'; bytes: Uint8Array };
const frameArb: fc.Arbitrary<Sent> = fc.oneof(
  { weight: 12, arbitrary: objectFrame.map((value) => ({ kind: 'json', value }) as const) },
  { weight: 1, arbitrary: anything.map((value) => ({ kind: 'json', value }) as const) },
  { weight: 1, arbitrary: deepFrame.map((text) => ({ kind: 'text', text }) as const) },
  {
    weight: 1,
    arbitrary: fc
      .oneof(
        fc.string({ maxLength: 40 }),
        fc.constantFrom('{', '{"v":1,', 'null', '[]', '"', '1e999999', 'undefined'),
      )
      .map((text) => ({ kind: 'text', text }) as const),
  },
  {
    weight: 1,
    arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ kind: 'binary', bytes }) as const),
  },
);

const NODE_TYPES = ['hello', 'heartbeat', 'accept', 'reject', 'progress', 'result', 'error'];
const REGISTERED = new Set([
  `${MODEL.name}:${MODEL.version}`,
  `${EMBEDDING_MODEL.name}:${EMBEDDING_MODEL.version}`,
]);

/**
 * What the protocol (docs/protocol.md) says the answer is: error codes (or `ack`s) in order, and the
 * `ref`/`attemptId` every error must name. Validity itself is judged by the published frame schema.
 */
function expectedAnswers(
  sent: Sent,
  helloed: boolean,
): { answers: string[]; ref: string; attemptId?: string } {
  let value: unknown;
  if (sent.kind === 'binary') return { answers: ['malformed_frame'], ref: 'unknown' };
  if (sent.kind === 'text') {
    try {
      value = JSON.parse(sent.text);
    } catch {
      return { answers: ['malformed_frame'], ref: 'unknown' };
    }
  } else value = JSON.parse(JSON.stringify(sent.value) ?? 'null');
  const o = (value !== null && typeof value === 'object' ? value : {}) as Record<string, unknown>;
  const ref = typeof o.type === 'string' && NODE_TYPES.includes(o.type) ? o.type : 'unknown';
  const attemptId =
    typeof o.attemptId === 'string' && /^[A-Za-z0-9_-]{1,128}:\d{1,3}$/.test(o.attemptId)
      ? o.attemptId
      : undefined;
  const about: { ref: string; attemptId?: string } = { ref, attemptId };
  if (o.v !== 1) return { answers: ['unsupported_version'], ...about };
  const parsed = nodeFrame.safeParse(value);
  if (!parsed.success) return { answers: ['malformed_frame'], ...about };
  const frame = parsed.data;
  if (!helloed && frame.type !== 'hello') return { answers: ['hello_required'], ...about };
  if (frame.type === 'heartbeat') return { answers: ['ack'], ...about };
  if (frame.type !== 'hello') return { answers: ['not_your_attempt'], ...about };
  const known = frame.models.filter((m) => REGISTERED.has(`${m.name}:${m.version}`));
  const answers = [
    ...(known.length < frame.models.length ? ['unknown_model'] : []),
    ...(known.length ? ['ack'] : []),
  ];
  return { answers, ...about };
}

function send(raw: RawNode, sent: Sent) {
  if (sent.kind === 'binary') raw.ws.send(sent.bytes, { binary: true });
  else raw.send(sent.kind === 'text' ? sent.text : (JSON.stringify(sent.value) ?? 'null'));
}

describe('node frames fuzzed over a real socket', () => {
  const suite = useCoordinator();

  it(`answers ${FRAMES + PRE_HELLO} hostile frames as the protocol says, stays healthy, and the node still completes a task (seed ${SEED})`, async () => {
    const started = Date.now();
    const { nodeId, key } = await suite.s.registerNode('fuzzed');
    const raw = await connectRawNode(suite.coordinator.url, key);
    const health = async () => {
      const r = await fetch(`${suite.coordinator.url}/api/health`);
      expect(r.status).toBe(200);
    };
    let helloed = false;
    let count = 0;
    const property = (options: { excludeHello: boolean }) =>
      fc.asyncProperty(frameArb, async (sent) => {
        const expected = expectedAnswers(sent, helloed);
        // Before the hello, keep it that way (a valid hello would end this phase early).
        fc.pre(!(options.excludeHello && expected.answers.includes('ack')));
        send(raw, sent);
        count++;
        for (const answer of expected.answers) {
          const got = await raw.take(undefined, 5_000);
          if (answer === 'ack') {
            expect(got).toMatchObject({ type: 'ack' });
            if (got.type === 'ack' && got.of === 'hello') helloed = true;
            continue;
          }
          const error = got as Extract<CoordinatorFrame, { type: 'error' }>;
          expect(error).toMatchObject({ type: 'error', code: answer, ref: expected.ref });
          expect(error.attemptId).toBe(answer === 'unknown_model' ? undefined : expected.attemptId);
        }
        if (count % 500 === 0) await health();
      });

    await fc.assert(property({ excludeHello: true }), { numRuns: PRE_HELLO, seed: SEED });
    expect(helloed).toBe(false);
    await raw.hello();
    helloed = true;
    await fc.assert(property({ excludeHello: false }), { numRuns: FRAMES, seed: SEED + 1 });

    // Nothing unanswered or answered twice, nothing `internal`, the socket still open.
    await new Promise((r) => setTimeout(r, 300));
    await expect(raw.take(undefined, 10)).rejects.toThrow(/no matching frame/);
    expect(raw.received.filter((f) => f.type === 'error' && f.code === 'internal')).toEqual([]);
    expect(raw.ws.readyState).toBe(raw.ws.OPEN);
    expect(count).toBeGreaterThanOrEqual(FRAMES + PRE_HELLO);
    await health();
    await raw.close();

    // The same node, now through the agent, takes and completes a task.
    const agent = await startNode(suite.coordinator.url, key);
    try {
      const r = await suite.s.clientA.post('/api/tasks', {
        model: MODEL.name,
        input: { prompt: 'after fuzz' },
      });
      expect(r.status).toBe(202);
      const task = await waitForStatus(suite.s.clientA, r.body.task.id, ['completed', 'failed']);
      expect(task).toMatchObject({ status: 'completed', nodeId });
    } finally {
      await agent.stop();
    }
    expect(Date.now() - started).toBeLessThan(90_000);
  }, 120_000);
});
