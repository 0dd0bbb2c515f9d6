import type { AssignFrame, CoordinatorFrame } from '../protocol/frames.js';
import type { Usage } from '../protocol/task-types.js';
import type { Backend } from './backends/types.js';
import type { BackoffOptions } from './backoff.js';
import type { AgentLogger } from './internal.js';

// The NodeAgent's public types: options, events, stats.

/** An `error` frame from the coordinator (protocol/frames.ts exports the schema, not this type). */
export type CoordinatorErrorFrame = Extract<CoordinatorFrame, { type: 'error' }>;

export interface NodeAgentOptions {
  /**
   * http(s)://host:port of the coordinator API; the agent connects to its node WebSocket. Several
   * addresses (api processes of one coordinator): each failed dial or disconnect moves to the next.
   */
  coordinatorUrl: string | string[];
  /** The node's API key, sent as `Authorization: Bearer <key>` on the upgrade request. */
  apiKey: string;
  models: { name: string; version: string }[];
  /** How many attempts may run at once; assignments beyond it are rejected. */
  capacity: number;
  hardware?: Record<string, unknown>;
  backend: Backend;
  /** Exponential backoff with jitter; reset once a connection has stayed up `stableAfterMs` (10 s). */
  reconnect?: Partial<BackoffOptions> & { stableAfterMs?: number };
  /** Reconnect when the coordinator has not acked the hello within this time; default 10 s. */
  helloTimeoutMs?: number;
  /**
   * Reports (accept, reject, result, error) answered `internal`, or not at all within `ackTimeoutMs`
   * (default 10 s), are sent again after an exponential, jittered delay: `initialDelayMs` (250) doubling
   * up to `maxDelayMs` (15 000).
   */
  reports?: Partial<BackoffOptions> & { ackTimeoutMs?: number };
  log?: AgentLogger;
  /** TEST-ONLY: make the agent misbehave on purpose. Never set by the CLI. */
  behaviour?: TestBehaviour;
}

/** TEST-ONLY knobs, for tests of how the coordinator copes with bad nodes. */
export interface TestBehaviour {
  /** 'ignore' never answers the assignment; 'reject' rejects it. Default: normal handling. */
  onAssign?: (assign: AssignFrame) => 'accept' | 'reject' | 'ignore';
  /** 'hang' accepts and then never sends a result (until cancelled). Default 'run'. */
  afterAccept?: 'run' | 'hang';
}

export interface NodeAgentStats {
  connected: boolean;
  nodeId: string | undefined;
  inflight: number;
  assigned: number;
  accepted: number;
  rejected: number;
  completed: number;
  failed: number;
  cancelled: number;
  /** Connection attempts after the first one. */
  reconnects: number;
  /** The coordinator address connected to (or being dialled). */
  coordinatorUrl: string;
}

export interface NodeAgentEvents {
  connected: [info: { nodeId: string | undefined; heartbeatIntervalMs: number }];
  disconnected: [info: { code: number; reason: string }];
  assigned: [assign: AssignFrame];
  accepted: [info: { attemptId: string }];
  rejected: [info: { attemptId: string; reason: string }];
  completed: [info: { attemptId: string; durationMs: number; usage?: Usage }];
  failed: [info: { attemptId: string; message: string }];
  cancelled: [info: { attemptId: string; reason: string }];
  'coordinator-error': [frame: CoordinatorErrorFrame];
  /** The coordinator sent something that is not a valid frame (logged and ignored). */
  'invalid-frame': [info: { problem: string }];
  /** The coordinator refused the key: the agent has stopped for good. */
  fatal: [error: Error];
}
