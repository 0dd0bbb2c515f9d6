import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for the node operator's inference server (vLLM, llama.cpp, …): software outside the
 * product, so a fake is the honest test double. Speaks just enough of the OpenAI HTTP API.
 */

export interface FakeOpenAiBehaviour {
  /** Delay before answering each request. */
  latencyMs: number;
  /** Answer every request with this HTTP status (e.g. 500, 429) and an OpenAI-style error body. */
  failStatus: number | undefined;
  /** The `error.message` of failures. */
  errorMessage: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
}

export interface FakeOpenAi {
  /** http://127.0.0.1:<port> (no `/v1`). */
  url: string;
  requests: RecordedRequest[];
  /** Requests whose client went away before the answer (e.g. an aborted fetch). */
  aborted: number;
  set(behaviour: Partial<FakeOpenAiBehaviour>): void;
  close(): Promise<void>;
}

const words = (s: string) => s.split(/\s+/).filter(Boolean).length;

/**
 * Start the fake on a free port. Chat replies are `reply: <last message>`; embeddings are
 * `[index, text length, 0…]` with `dimensions` (default 4) components, returned in reverse index order
 * so clients must sort by `index`.
 * @example const fake = await startFakeOpenAi(); fake.set({ failStatus: 500 }); await fake.close();
 */
export async function startFakeOpenAi(initial: Partial<FakeOpenAiBehaviour> = {}): Promise<FakeOpenAi> {
  const behaviour: FakeOpenAiBehaviour = {
    latencyMs: 0,
    failStatus: undefined,
    errorMessage: 'fake failure',
    ...initial,
  };
  const requests: RecordedRequest[] = [];
  const state = { aborted: 0 };

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      body = undefined;
    }
    requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
    res.on('close', () => {
      if (!res.writableFinished) state.aborted++;
    });
    if (behaviour.latencyMs > 0) await new Promise((r) => setTimeout(r, behaviour.latencyMs));
    if (res.destroyed) return;
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };
    if (behaviour.failStatus) {
      return send(behaviour.failStatus, { error: { message: behaviour.errorMessage, type: 'server_error' } });
    }
    if (req.method === 'POST' && req.url === '/v1/chat/completions') return send(200, chat(body));
    if (req.method === 'POST' && req.url === '/v1/embeddings') return send(200, embeddings(body));
    send(404, { error: { message: `no route ${req.method} ${req.url}` } });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get aborted() {
      return state.aborted;
    },
    set(patch) {
      Object.assign(behaviour, patch);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function chat(body: unknown) {
  const { model, messages = [] } = body as { model?: string; messages?: { content: string }[] };
  const content = `reply: ${messages.at(-1)?.content ?? ''}`;
  const promptTokens = messages.reduce((n, m) => n + words(m.content), 0);
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: promptTokens, completion_tokens: words(content), total_tokens: 0 },
  };
}

function embeddings(body: unknown) {
  const {
    model,
    input,
    dimensions = 4,
  } = body as { model?: string; input: string | string[]; dimensions?: number };
  const texts = Array.isArray(input) ? input : [input];
  const data = texts.map((text, index) => ({
    object: 'embedding',
    index,
    embedding: [index, text.length, ...new Array(Math.max(0, dimensions - 2)).fill(0)],
  }));
  return {
    object: 'list',
    model,
    data: data.reverse(),
    usage: { prompt_tokens: texts.reduce((n, t) => n + words(t), 0), total_tokens: 0 },
  };
}
