import { z } from 'zod';
import { TASK_TYPES, usage } from './task-types.js';
import { safeText, storableJson, unstorableJson } from './text.js';

/**
 * The node WebSocket protocol, version 1: JSON text frames, each `{ v: 1, type, … }`.
 * Node → coordinator: hello, heartbeat, accept, reject, progress, result, error.
 * Coordinator → node: ack, assign, cancel, error.
 * Every frame is validated on receipt; a malformed one is answered with an `error` frame. No text a
 * node sends (model names, hardware, reasons, messages, outputs) may hold NUL or a lone surrogate, and
 * no JSON it sends may nest deeper than MAX_JSON_DEPTH: PostgreSQL cannot store the one, and the other
 * overflows every recursive walker downstream (zod, Prisma, the pg driver, JSON.stringify).
 */
export const PROTOCOL_VERSION = 1;
/** Path of the WebSocket endpoint on the API's HTTP server. */
export const NODE_SOCKET_PATH = '/api/nodes/connect';
/** WebSocket close code for a failed authentication (4000–4999 are application codes). */
export const CLOSE_UNAUTHORIZED = 4401;
/** Close code when the key this socket authenticated with was revoked: do not reconnect with it. */
export const CLOSE_KEY_REVOKED = 4403;
/** Close code when another connection of the same node replaced this one. */
export const CLOSE_REPLACED = 4409;
/** Largest frame accepted (a result carries the whole output). */
export const MAX_FRAME_BYTES = 8 * 1024 * 1024;
/** Close code when the node sent no hello in time. */
export const CLOSE_NO_HELLO = 4408;
/** Largest `hardware` object in a hello, as JSON text (UTF-8 bytes). */
export const MAX_HARDWARE_BYTES = 16 * 1024;
/** PostgreSQL INTEGER's ceiling: the heartbeat counters are stored in INTEGER columns. */
const MAX_INT4 = 2 ** 31 - 1;

const v = z.literal(PROTOCOL_VERSION);
/** `<taskId>:<attemptNo>`: names one assignment of one task to one node. */
export const attemptId = z.string().regex(/^[A-Za-z0-9_-]{1,128}:\d{1,3}$/, 'must be <taskId>:<attemptNo>');
const modelRef = z.object({ name: safeText().min(1).max(128), version: safeText().min(1).max(64) });

/** Free-form facts about a node: storable JSON of at most MAX_HARDWARE_BYTES. */
const hardware = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  const problem = unstorableJson(value);
  if (problem) return ctx.addIssue({ code: 'custom', ...problem });
  const bytes = Buffer.byteLength(JSON.stringify(value));
  if (bytes > MAX_HARDWARE_BYTES) {
    ctx.addIssue({ code: 'custom', message: `${bytes} bytes of JSON, at most ${MAX_HARDWARE_BYTES}` });
  }
});

// node → coordinator
export const helloFrame = z.object({
  v,
  type: z.literal('hello'),
  models: z.array(modelRef).min(1).max(64),
  capacity: z.number().int().min(1).max(1_024),
  hardware: hardware.optional(),
  agent: safeText().max(64).optional(),
});
export const nodeMetrics = z.object({
  gpuUtil: z.number().min(0).max(1).optional(),
  cpuUtil: z.number().min(0).max(1).optional(),
  memUsedMb: z.number().int().min(0).max(MAX_INT4).optional(),
});
export const heartbeatFrame = z.object({
  v,
  type: z.literal('heartbeat'),
  load: z.number().min(0).max(1),
  inflight: z.number().int().min(0).max(MAX_INT4),
  metrics: nodeMetrics.optional(),
});
export const acceptFrame = z.object({ v, type: z.literal('accept'), attemptId });
export const rejectFrame = z.object({ v, type: z.literal('reject'), attemptId, reason: safeText().max(500) });
export const progressFrame = z.object({
  v,
  type: z.literal('progress'),
  attemptId,
  progress: z.number().min(0).max(1).optional(),
  message: safeText().max(500).optional(),
});
export const resultFrame = z.object({
  v,
  type: z.literal('result'),
  attemptId,
  /** Any JSON; its shape is the task type's, checked during verification, not on receipt. */
  output: z
    .unknown()
    .refine((value): boolean => value !== undefined, 'Required')
    .superRefine(storableJson),
  usage: usage.optional(),
});
export const nodeErrorFrame = z.object({
  v,
  type: z.literal('error'),
  attemptId,
  message: safeText().max(2_000),
});

export const nodeFrame = z.discriminatedUnion('type', [
  helloFrame,
  heartbeatFrame,
  acceptFrame,
  rejectFrame,
  progressFrame,
  resultFrame,
  nodeErrorFrame,
]);
export type NodeFrame = z.infer<typeof nodeFrame>;
export type HelloFrame = z.infer<typeof helloFrame>;
export type HeartbeatFrame = z.infer<typeof heartbeatFrame>;
/** accept, reject, result, error: a node's answers on one attempt, each acked once it took effect. */
export const REPORT_TYPES = ['accept', 'reject', 'result', 'error'] as const;
export type ReportFrame = Extract<NodeFrame, { type: (typeof REPORT_TYPES)[number] }>;
export function isReportType(type: string): type is ReportFrame['type'] {
  return (REPORT_TYPES as readonly string[]).includes(type);
}

/** What an error frame's `ref` can name: a node frame type, or `unknown` when none can be told. */
export const FRAME_REFS = [
  'hello',
  'heartbeat',
  'accept',
  'reject',
  'progress',
  'result',
  'error',
  'unknown',
] as const;
export type FrameRef = (typeof FRAME_REFS)[number];

/**
 * Which frame an error answers, read from whatever JSON arrived (valid or not): its `type` when that
 * is a node frame type (else `unknown`), and its `attemptId` when that is well-formed.
 * @example frameRef({ type: 'result', attemptId: 't_1:1', output: 7n }) // { ref: 'result', attemptId: 't_1:1' }
 */
export function frameRef(json: unknown): { ref: FrameRef; attemptId?: string } {
  const o = (json !== null && typeof json === 'object' ? json : {}) as {
    type?: unknown;
    attemptId?: unknown;
  };
  const ref = FRAME_REFS.find((r) => r !== 'unknown' && r === o.type) ?? 'unknown';
  const id = attemptId.safeParse(o.attemptId);
  return id.success ? { ref, attemptId: id.data } : { ref };
}

// coordinator → node
export const ackFrame = z.object({
  v,
  type: z.literal('ack'),
  /** The frame type acknowledged. */
  of: z.enum(['hello', 'heartbeat', 'accept', 'reject', 'progress', 'result', 'error']),
  attemptId: attemptId.optional(),
  /** On the hello ack: who the coordinator thinks this node is, and how often to heartbeat. */
  nodeId: z.string().optional(),
  heartbeatIntervalMs: z.number().int().positive().optional(),
});
export const assignFrame = z.object({
  v,
  type: z.literal('assign'),
  attemptId,
  taskId: z.string(),
  model: modelRef.extend({ taskType: z.enum(TASK_TYPES) }),
  input: z.unknown(),
  params: z.record(z.string(), z.unknown()),
  /** Answer with accept or reject within this many ms, or the task moves on. */
  acceptTimeoutMs: z.number().int().positive(),
  /** After accepting, deliver result or error within this many ms. */
  resultTimeoutMs: z.number().int().positive(),
});
export const cancelFrame = z.object({ v, type: z.literal('cancel'), attemptId, reason: z.string() });
export const errorCodes = [
  'malformed_frame',
  'unsupported_version',
  'hello_required',
  'not_your_attempt',
  'attempt_closed',
  'unknown_model',
  'internal',
] as const;
export const coordinatorErrorFrame = z.object({
  v,
  type: z.literal('error'),
  code: z.enum(errorCodes),
  message: z.string(),
  /** The frame it answers: that frame's `type`, or `unknown` (see frameRef). */
  ref: z.enum(FRAME_REFS),
  /** That frame's `attemptId`, when it had a well-formed one. */
  attemptId: attemptId.optional(),
});

export const coordinatorFrame = z.discriminatedUnion('type', [
  ackFrame,
  assignFrame,
  cancelFrame,
  coordinatorErrorFrame,
]);
export type CoordinatorFrame = z.infer<typeof coordinatorFrame>;
export type AssignFrame = z.infer<typeof assignFrame>;
export type CancelFrame = z.infer<typeof cancelFrame>;
export type CoordinatorErrorCode = (typeof errorCodes)[number];

/** Split an attempt id into its task id and attempt number. */
export function parseAttemptId(id: string): { taskId: string; attemptNo: number } {
  const at = id.lastIndexOf(':');
  return { taskId: id.slice(0, at), attemptNo: Number(id.slice(at + 1)) };
}

export function formatAttemptId(taskId: string, attemptNo: number): string {
  return `${taskId}:${attemptNo}`;
}
