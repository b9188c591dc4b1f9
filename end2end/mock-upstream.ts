import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';

// A stand-in for an OpenAI-compatible provider: lists models for the right key, answers chat
// completions (plain and streamed). The key it accepts is `sk-mock-valid-key-0001`. It also plays
// an Azure OpenAI resource at its root: `/openai/deployments/{deployment}/chat/completions` and
// `/openai/models`, both needing `?api-version=` and the key in `api-key`, as Azure does. And it
// plays Google Vertex AI: a token endpoint at `/token` that verifies a service account's RS256
// assertion (signature against the account's public key, issuer, audience, scope, lifetime) and
// Claude's `rawPredict`, which takes only the tokens it issued, Vertex's `anthropic_version` and
// no `model` in the body. And Gemini's own API under `/v1beta` (the key in `x-goog-api-key`):
// the model list and `generateContent`, which wants `contents` and `maxOutputTokens`.
export const VALID_KEY = 'sk-mock-valid-key-0001';

const FIXTURES = path.resolve(__dirname, '../tests/api/fixtures');
export const SA_EMAIL = 'perpetuo-e2e@perpetuo-test.iam.gserviceaccount.com';
const SA_PUBLIC_KEY = fs.readFileSync(path.join(FIXTURES, 'vertex-sa-1.pub.pem'), 'utf8');

/** A service account JSON key whose token endpoint is the mock at `root`. */
export function serviceAccount(root: string): string {
  return JSON.stringify({
    type: 'service_account', project_id: 'perpetuo-test', private_key_id: 'e2e0000000000000abcd',
    private_key: fs.readFileSync(path.join(FIXTURES, 'vertex-sa-1.pem'), 'utf8'),
    client_email: SA_EMAIL, token_uri: `${root}/token`,
  });
}

const issued = new Set<string>();

/** The reason a Google token request is refused, or null. */
function refuseAssertion(form: URLSearchParams, host: string): string | null {
  if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return 'unsupported_grant_type';
  const parts = (form.get('assertion') ?? '').split('.');
  if (parts.length !== 3) return 'invalid_grant: malformed assertion';
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
  if (header.alg !== 'RS256') return 'invalid_grant: alg';
  const signed = crypto.verify('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), SA_PUBLIC_KEY, Buffer.from(parts[2], 'base64url'));
  if (!signed) return 'invalid_grant: Invalid JWT Signature.';
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  const now = Math.floor(Date.now() / 1000);
  if (claims.iss !== SA_EMAIL || claims.aud !== `http://${host}/token`) return 'invalid_grant: issuer or audience';
  if (!String(claims.scope).split(' ').includes('https://www.googleapis.com/auth/cloud-platform')) return 'invalid_scope';
  if (!(claims.exp > now && claims.exp - claims.iat <= 3600)) return 'invalid_grant: expired or too long-lived';
  return null;
}

function vertex(req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: string): boolean {
  const send = (status: number, value: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  };
  if (req.method === 'POST' && url.pathname === '/token') {
    const refused = refuseAssertion(new URLSearchParams(body), req.headers.host ?? '');
    if (refused) { send(400, { error: 'invalid_grant', error_description: refused }); return true; }
    const token = `ya29.e2e-${crypto.randomUUID()}`;
    issued.add(token);
    send(200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
    return true;
  }
  const predict = /^\/v1\/projects\/perpetuo-test\/locations\/([a-z0-9-]+)\/publishers\/anthropic\/models\/([^/]+):rawPredict$/.exec(url.pathname);
  if (!predict && url.pathname !== '/v1beta1/publishers/anthropic/models') return false;
  const token = (req.headers['authorization'] ?? '').replace(/^Bearer /, '');
  if (!issued.has(token)) { send(401, { error: { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED' } }); return true; }
  if (!predict) {
    send(200, { publisherModels: [{ name: 'publishers/anthropic/models/claude-sonnet-4-5' }, { name: 'publishers/anthropic/models/claude-haiku-4-5' }] });
    return true;
  }
  const request = JSON.parse(body || '{}');
  if (request.anthropic_version !== 'vertex-2023-10-16' || 'model' in request || request.stream) {
    send(400, { type: 'error', error: { type: 'invalid_request_error', message: 'not a Vertex AI rawPredict body' } });
    return true;
  }
  send(200, {
    id: 'msg_vrtx_e2e', type: 'message', role: 'assistant', model: decodeURIComponent(predict[2]),
    content: [{ type: 'text', text: 'Hello from Vertex' }], stop_reason: 'end_turn', stop_sequence: null,
    usage: { input_tokens: 11, output_tokens: 7 },
  });
  return true;
}

function gemini(req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: string): boolean {
  if (!url.pathname.startsWith('/v1beta/')) return false;
  const send = (status: number, value: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  };
  if (req.headers['x-goog-api-key'] !== VALID_KEY) {
    send(400, { error: { code: 400, message: 'API key not valid. Please pass a valid API key.', status: 'INVALID_ARGUMENT',
      details: [{ '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'API_KEY_INVALID' }] } });
    return true;
  }
  if (req.method === 'GET' && url.pathname === '/v1beta/models') {
    send(200, { models: [{ name: 'models/gemini-2.5-flash' }, { name: 'models/gemini-2.5-pro' }] });
    return true;
  }
  const request = JSON.parse(body || '{}');
  if (!url.pathname.endsWith(':generateContent') || !Array.isArray(request.contents) || !request.generationConfig?.maxOutputTokens) {
    send(400, { error: { code: 400, message: 'Invalid generateContent request', status: 'INVALID_ARGUMENT' } });
    return true;
  }
  send(200, {
    candidates: [{ content: { role: 'model', parts: [{ text: 'Hello from Gemini' }] }, finishReason: 'STOP', index: 0 }],
    usageMetadata: { promptTokenCount: 11, candidatesTokenCount: 7, totalTokenCount: 18 }, modelVersion: 'gemini-2.5-flash',
  });
  return true;
}

export async function startMockUpstream(): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://mock');
    const azure = url.pathname.startsWith('/openai/');
    const ok = azure ? req.headers['api-key'] === VALID_KEY : (req.headers['authorization'] ?? '') === `Bearer ${VALID_KEY}`;
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      if (vertex(req, res, url, body)) return;
      if (gemini(req, res, url, body)) return;
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
