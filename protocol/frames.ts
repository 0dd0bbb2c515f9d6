import { z } from 'zod';
import { TASK_TYPES, usage } from './task-types.js';

/**
 * The node WebSocket protocol, version 1: JSON text frames, each `{ v: 1, type, … }`.
 * Node → coordinator: hello, heartbeat, accept, reject, progress, result, error.
 * Coordinator → node: ack, assign, cancel, error.
 * Every frame is validated on receipt; a malformed one is answered with an `error` frame.
 */
export const PROTOCOL_VERSION = 1;
/** Path of the WebSocket endpoint on the API's HTTP server. */
export const NODE_SOCKET_PATH = '/api/nodes/connect';
/** WebSocket close code for a failed authentication (4000–4999 are application codes). */
export const CLOSE_UNAUTHORIZED = 4401;
/** Close code when another connection of the same node replaced this one. */
export const CLOSE_REPLACED = 4409;
/** Largest frame accepted (a result carries the whole output). */
export const MAX_FRAME_BYTES = 8 * 1024 * 1024;
/** Close code when the node sent no hello in time. */
export const CLOSE_NO_HELLO = 4408;

const v = z.literal(PROTOCOL_VERSION);
/** `<taskId>:<attemptNo>`: names one assignment of one task to one node. */
export const attemptId = z.string().regex(/^[A-Za-z0-9_-]{1,128}:\d{1,3}$/, 'must be <taskId>:<attemptNo>');
const modelRef = z.object({ name: z.string().min(1).max(128), version: z.string().min(1).max(64) });

// node → coordinator
export const helloFrame = z.object({
  v,
  type: z.literal('hello'),
  models: z.array(modelRef).min(1).max(64),
  capacity: z.number().int().min(1).max(1_024),
  hardware: z.record(z.string(), z.unknown()).optional(),
  agent: z.string().max(64).optional(),
});
export const nodeMetrics = z.object({
  gpuUtil: z.number().min(0).max(1).optional(),
  cpuUtil: z.number().min(0).max(1).optional(),
  memUsedMb: z.number().int().min(0).optional(),
});
export const heartbeatFrame = z.object({
  v,
  type: z.literal('heartbeat'),
  load: z.number().min(0).max(1),
  inflight: z.number().int().min(0),
  metrics: nodeMetrics.optional(),
});
export const acceptFrame = z.object({ v, type: z.literal('accept'), attemptId });
export const rejectFrame = z.object({ v, type: z.literal('reject'), attemptId, reason: z.string().max(500) });
export const progressFrame = z.object({
  v,
  type: z.literal('progress'),
  attemptId,
  progress: z.number().min(0).max(1).optional(),
  message: z.string().max(500).optional(),
});
export const resultFrame = z.object({
  v,
  type: z.literal('result'),
  attemptId,
  output: z.unknown(),
  usage: usage.optional(),
});
export const nodeErrorFrame = z.object({
  v,
  type: z.literal('error'),
  attemptId,
  message: z.string().max(2_000),
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
  /** The type of the frame that caused it, when known. */
  ref: z.string().optional(),
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
