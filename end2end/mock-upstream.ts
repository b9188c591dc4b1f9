import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

// A stand-in for an OpenAI-compatible provider: lists models for the right key, answers chat
// completions (plain and streamed). The key it accepts is `sk-mock-valid-key-0001`. It also plays
// an Azure OpenAI resource at its root: `/openai/deployments/{deployment}/chat/completions` and
// `/openai/models`, both needing `?api-version=` and the key in `api-key`, as Azure does.
export const VALID_KEY = 'sk-mock-valid-key-0001';

export async function startMockUpstream(): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://mock');
    const azure = url.pathname.startsWith('/openai/');
    const ok = azure ? req.headers['api-key'] === VALID_KEY : (req.headers['authorization'] ?? '') === `Bearer ${VALID_KEY}`;
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (azure && !url.searchParams.get('api-version')) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: '404', message: 'Resource not found' } }));
        return;
      }
      if (!ok) {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: 'Incorrect API key provided.', type: 'invalid_request_error' } }));
        return;
      }
      if (req.method === 'GET' && url.pathname.endsWith('/models')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ object: 'list', data: [{ id: 'mock-small', object: 'model' }, { id: 'mock-large', object: 'model' }] }));
        return;
      }
      if (req.method === 'POST' && url.pathname.endsWith('/chat/completions')) {
        const request = JSON.parse(body || '{}');
        const usage = { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 };
        if (request.stream) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          const base = { id: 'chatcmpl-mock', object: 'chat.completion.chunk', created: 1, model: request.model };
          res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: 'Hello' }, finish_reason: null }] })}\n\n`);
          res.write(`data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
          if (request.stream_options?.include_usage) res.write(`data: ${JSON.stringify({ ...base, choices: [], usage })}\n\n`);
          res.end('data: [DONE]\n\n');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({
          id: 'chatcmpl-mock', object: 'chat.completion', created: 1, model: request.model,
          choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the mock' }, finish_reason: 'stop' }],
          usage,
        }));
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'not found' } }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
