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
// the model list and `generateContent`, which wants `contents` and `maxOutputTokens`. And Amazon
// Bedrock: InvokeModel at `/model/{id}/invoke` and the model list at `/foundation-models`, each
// request's SigV4 signature recomputed here (the known access key, region eu-west-3, service
// `bedrock`, a fresh date), the body Bedrock's (`bedrock-2023-05-31`, no `model` or `stream`).
export const VALID_KEY = 'sk-mock-valid-key-0001';
export const AWS_ACCESS_KEY_ID = 'AKIAPERPETUOE2E00001';
const AWS_SECRET = 'e2e/secret+KEY/0001example';
export const AWS_REGION = 'eu-west-3';

/** IAM credentials as a Bedrock provider's key field takes them. */
export function awsAccessKey(): string {
  return JSON.stringify({ access_key_id: AWS_ACCESS_KEY_ID, secret_access_key: AWS_SECRET });
}

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
  const generate = /^\/v1\/projects\/perpetuo-test\/locations\/([a-z0-9-]+)\/publishers\/google\/models\/([^/]+):generateContent$/.exec(url.pathname);
  const catalogue = /^\/v1beta1\/publishers\/(anthropic|google)\/models$/.exec(url.pathname);
  if (!predict && !generate && !catalogue) return false;
  const token = (req.headers['authorization'] ?? '').replace(/^Bearer /, '');
  if (!issued.has(token)) { send(401, { error: { code: 401, message: 'Request had invalid authentication credentials.', status: 'UNAUTHENTICATED' } }); return true; }
  if (generate) {
    const request = JSON.parse(body || '{}');
    if (!Array.isArray(request.contents) || !request.generationConfig?.maxOutputTokens) {
      send(400, { error: { code: 400, message: 'Invalid generateContent request', status: 'INVALID_ARGUMENT' } });
      return true;
    }
    send(200, {
      candidates: [{ content: { role: 'model', parts: [{ text: 'Hello from Gemini on Vertex' }] }, finishReason: 'STOP', index: 0 }],
      usageMetadata: { promptTokenCount: 11, candidatesTokenCount: 7, totalTokenCount: 18 }, modelVersion: decodeURIComponent(generate[2]),
    });
    return true;
  }
  if (!predict) {
    const publisher = catalogue![1];
    const names = publisher === 'google' ? ['gemini-2.5-flash', 'gemini-2.5-pro'] : ['claude-sonnet-4-5', 'claude-haiku-4-5'];
    send(200, { publisherModels: names.map((n) => ({ name: `publishers/${publisher}/models/${n}` })) });
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

const awsEncode = (raw: string, keepSlash: boolean) =>
  Array.from(Buffer.from(raw)).map((b) => {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c) || (keepSlash && c === '/')) return c;
    return '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }).join('');

/** Why a SigV4-signed request is refused, or null: the signature recomputed from the request. */
function refuseSignature(req: http.IncomingMessage, body: string): string | null {
  const auth = String(req.headers['authorization'] ?? '');
  const m = /^AWS4-HMAC-SHA256 Credential=([^,]+), ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)$/.exec(auth);
  if (!m) return 'Missing Authentication Token';
  const [akid, date, region, service, term] = m[1].split('/');
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  if (akid !== AWS_ACCESS_KEY_ID || term !== 'aws4_request') return 'The security token included in the request is invalid.';
  if (region !== AWS_REGION || service !== 'bedrock' || !amzDate.startsWith(date)) return 'Credential should be scoped to a valid region.';
  const when = Date.UTC(+amzDate.slice(0, 4), +amzDate.slice(4, 6) - 1, +amzDate.slice(6, 8), +amzDate.slice(9, 11), +amzDate.slice(11, 13), +amzDate.slice(13, 15));
  if (!(Math.abs(Date.now() - when) <= 300_000)) return 'Signature expired';
  const signed = m[2].split(';');
  if (!signed.includes('host') || !signed.includes('x-amz-date')) return 'host and x-amz-date must be signed';
  const [rawPath, rawQuery = ''] = (req.url ?? '/').split('?');
  const query = rawQuery.split('&').filter(Boolean).map((p) => p.split('=')).map(([k, v = '']) => [awsEncode(k, false), awsEncode(v, false)]).sort().map(([k, v]) => `${k}=${v}`).join('&');
  const headers = signed.map((h) => `${h}:${String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const hash = (x: string) => crypto.createHash('sha256').update(x).digest('hex');
  const canonical = [req.method, awsEncode(rawPath, true), query, headers, m[2], hash(body)].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, `${date}/${region}/${service}/aws4_request`, hash(canonical)].join('\n');
  const key = [date, region, service, 'aws4_request'].reduce<Buffer>((k, part) => crypto.createHmac('sha256', k).update(part).digest(), Buffer.from(`AWS4${AWS_SECRET}`));
  const expected = crypto.createHmac('sha256', key).update(toSign).digest('hex');
  return expected === m[3] ? null : 'The request signature we calculated does not match the signature you provided.';
}

function bedrock(req: http.IncomingMessage, res: http.ServerResponse, url: URL, body: string): boolean {
  const invoke = /^\/model\/([^/]+)\/(invoke|converse)$/.exec(url.pathname);
  if (!invoke && url.pathname !== '/foundation-models') return false;
  const send = (status: number, value: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  };
  const refused = refuseSignature(req, body);
  if (refused) { send(403, { message: refused }); return true; }
  if (!invoke) {
    send(200, { modelSummaries: [{ modelId: 'anthropic.claude-3-5-haiku-20241022-v1:0' }, { modelId: 'anthropic.claude-sonnet-4-5-20250929-v1:0' }] });
    return true;
  }
  const request = JSON.parse(body || '{}');
  if (invoke[2] === 'converse') {
    const turns = request.messages;
    if (!Array.isArray(turns) || !turns.length || turns[0].role !== 'user' || !(request.inferenceConfig?.maxTokens > 0)) {
      send(400, { message: 'Malformed Converse request' });
      return true;
    }
    send(200, {
      output: { message: { role: 'assistant', content: [{ text: 'Hello from Nova' }] } }, stopReason: 'end_turn',
      usage: { inputTokens: 11, outputTokens: 7, totalTokens: 18 }, metrics: { latencyMs: 9 },
    });
    return true;
  }
  if (request.anthropic_version !== 'bedrock-2023-05-31' || 'model' in request || 'stream' in request) {
    send(400, { message: 'Malformed input request: not a Bedrock InvokeModel body for Claude' });
    return true;
  }
  send(200, {
    id: 'msg_bdrk_e2e', type: 'message', role: 'assistant', model: decodeURIComponent(invoke[1]),
    content: [{ type: 'text', text: 'Hello from Bedrock' }], stop_reason: 'end_turn', stop_sequence: null,
    usage: { input_tokens: 11, output_tokens: 7 },
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
      if (bedrock(req, res, url, body)) return;
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
  // Node closes idle connections after 5 s by default: a pooled connection the gateway picks up
  // as Node closes it fails the attempt (and charges it, as it may have reached the provider).
  // Real providers keep connections far longer; so does the mock.
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
