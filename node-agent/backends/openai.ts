import { z } from 'zod';
import type { EmbeddingOutput, TextGenerationOutput, Usage } from '../../protocol/task-types.js';
import { type ParsedTask, parseTask } from './inputs.js';
import type { Backend, BackendResult, BackendTask } from './types.js';

export interface OpenAiBackendOptions {
  /** Root of the OpenAI-compatible server (vLLM, llama.cpp, Ollama…); a trailing `/v1` is tolerated. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` when the inference server wants one. */
  apiKey?: string;
  /** NeuroGrid model → server model name; keys are `name:version` or `name`. Unmapped names pass through. */
  modelMap?: Record<string, string>;
  /** Per-request limit; default 10 minutes (long generations are normal). */
  timeoutMs?: number;
}

/** The inference server answered with a non-2xx status. */
export class BackendHttpError extends Error {
  override name = 'BackendHttpError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const MAX_DETAIL = 200;

const chatResponse = z.object({
  choices: z
    .array(
      z.object({
        message: z.object({ content: z.string().nullish() }).optional(),
        finish_reason: z.string().nullish(),
      }),
    )
    .min(1, 'no choices'),
  usage: z.object({ prompt_tokens: z.number(), completion_tokens: z.number().optional() }).nullish(),
});
const embeddingsResponse = z.object({
  data: z.array(z.object({ index: z.number().int().min(0), embedding: z.array(z.number()) })),
  usage: z.object({ prompt_tokens: z.number() }).nullish(),
});

/**
 * A backend that forwards tasks to an OpenAI-compatible HTTP server: text_generation →
 * `/v1/chat/completions`, embedding → `/v1/embeddings`.
 * @example const backend = openAiBackend({ baseUrl: 'http://127.0.0.1:8000', modelMap: { 'llama-3.1-8b': 'meta-llama/Llama-3.1-8B-Instruct' } });
 */
export function openAiBackend(options: OpenAiBackendOptions): Backend {
  if (!URL.canParse(options.baseUrl) || !/^https?:$/.test(new URL(options.baseUrl).protocol)) {
    throw new TypeError('openAiBackend: baseUrl must be an http(s) URL');
  }
  const root = options.baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
  const timeoutMs = options.timeoutMs ?? 600_000;
  const modelMap = options.modelMap ?? {};

  async function post(path: string, body: unknown, signal: AbortSignal): Promise<unknown> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
    };
    if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
    let res: Response;
    try {
      res = await fetch(`${root}${path}`, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
      });
    } catch (err) {
      if (signal.aborted) throw signal.reason ?? err;
      if ((err as Error).name === 'TimeoutError') throw new Error(`backend timed out after ${timeoutMs} ms`);
      throw new Error(`backend unreachable: ${(err as Error).message}`.slice(0, MAX_DETAIL + 40));
    }
    const text = await res.text();
    if (!res.ok) throw new BackendHttpError(res.status, `backend HTTP ${res.status}: ${errorDetail(text)}`);
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`backend returned invalid JSON (HTTP ${res.status})`);
    }
  }

  const modelName = (task: BackendTask) =>
    modelMap[`${task.model.name}:${task.model.version}`] ?? modelMap[task.model.name] ?? task.model.name;

  return {
    async run(task, signal) {
      const parsed = parseTask(task);
      return parsed.taskType === 'text_generation'
        ? chat(parsed, modelName(task), signal)
        : embed(parsed, modelName(task), signal);
    },
  };

  async function chat(
    t: Extract<ParsedTask, { taskType: 'text_generation' }>,
    model: string,
    signal: AbortSignal,
  ): Promise<BackendResult> {
    const messages = 'prompt' in t.input ? [{ role: 'user', content: t.input.prompt }] : t.input.messages;
    const { maxTokens, temperature, topP, stop, seed } = t.params;
    const body = {
      model,
      messages,
      max_tokens: maxTokens,
      temperature,
      top_p: topP,
      stop,
      seed,
      stream: false,
    };
    const res = shape(chatResponse, await post('/v1/chat/completions', body, signal), 'chat completion');
    const choice = res.choices[0];
    const output: TextGenerationOutput = { text: choice?.message?.content ?? '' };
    if (choice?.finish_reason) output.finishReason = choice.finish_reason.slice(0, 32);
    return withUsage(output, res.usage?.prompt_tokens, res.usage?.completion_tokens);
  }

  async function embed(
    t: Extract<ParsedTask, { taskType: 'embedding' }>,
    model: string,
    signal: AbortSignal,
  ): Promise<BackendResult> {
    const input = 'texts' in t.input ? t.input.texts : t.input.text;
    const expected = Array.isArray(input) ? input.length : 1;
    const body = { model, input, dimensions: t.params.dimensions, encoding_format: 'float' };
    const res = shape(embeddingsResponse, await post('/v1/embeddings', body, signal), 'embeddings');
    if (res.data.length !== expected) {
      throw new Error(`backend returned ${res.data.length} embeddings for ${expected} inputs`);
    }
    // The API does not promise `data` in input order; `index` is the contract.
    const output: EmbeddingOutput = {
      embeddings: [...res.data].sort((a, b) => a.index - b.index).map((d) => d.embedding),
    };
    return withUsage(output, res.usage?.prompt_tokens, 0);
  }
}

function shape<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    throw new Error(`backend returned an unexpected ${what} response: ${parsed.error.issues[0]?.message}`);
  }
  return parsed.data;
}

function withUsage(output: unknown, input?: number, out?: number): BackendResult {
  const ok = (n?: number) => Number.isInteger(n) && (n as number) >= 0;
  const usage: Usage | undefined =
    ok(input) && ok(out) ? { inputTokens: input as number, outputTokens: out as number } : undefined;
  return usage ? { output, usage } : { output };
}

/** The server's own error message when it sent the usual `{ error: { message } }`, else the body; short. */
function errorDetail(body: string): string {
  let detail = body;
  try {
    const json = JSON.parse(body) as { error?: { message?: unknown } | string; message?: unknown };
    const message = typeof json.error === 'string' ? json.error : (json.error?.message ?? json.message);
    if (typeof message === 'string') detail = message;
  } catch {
    // not JSON: use the raw text
  }
  detail = detail.replace(/\s+/g, ' ').trim() || 'no details';
  return detail.length > MAX_DETAIL ? `${detail.slice(0, MAX_DETAIL)}…` : detail;
}
