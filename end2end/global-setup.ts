import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { startMockUpstream } from './mock-upstream';

// Starts Perpetuo on 127.0.0.1:0 and reads the port it got from its log; starts the mock
// upstream LLM provider the provider tests point at. Both URLs reach the tests via process.env.
export default async function globalSetup() {
  const root = path.resolve(__dirname, '..');
  const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(root, 'target');
  const bin = path.resolve(process.env.PERPETUO_BIN ?? path.join(targetDir, 'debug', 'perpetuo'));
  const siteRoot = path.resolve(process.env.LEPTOS_SITE_ROOT ?? path.join(targetDir, 'site'));

  const mock = await startMockUpstream();
  process.env.MOCK_UPSTREAM_URL = mock.url;

  const child = spawn(bin, [], {
    cwd: root,
    env: {
      ...process.env,
      DATABASE_URL: 'mem://',
      ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      JWT_SECRET: randomBytes(48).toString('base64url'),
      LEPTOS_SITE_ADDR: '127.0.0.1:0',
      LEPTOS_SITE_ROOT: siteRoot,
      ALLOW_PRIVATE_UPSTREAMS: 'true',
      // Every journey signs in from 127.0.0.1: the login throttle has its own API tests.
      RATE_LIMIT_LOGIN_PER_MIN: '1000',
      // Every journey signs up its own account: sign-up stays open for the suite.
      SIGNUP: 'open',
      RUST_LOG: process.env.RUST_LOG ?? 'info',
    },
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  const baseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('perpetuo did not start within 60 s')), 60_000);
    let seen = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      if (process.env.E2E_SERVER_LOG) process.stderr.write(text);
      seen += text;
      const match = seen.match(/listening on (http:\/\/[0-9.]+:\d+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${bin}: ${error.message}`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`perpetuo exited early with ${code}:\n${seen}`));
    });
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    if (process.env.E2E_SERVER_LOG) process.stderr.write(chunk);
  });
  process.env.BASE_URL = baseUrl;
  // Playwright runs the returned function as the teardown.
  return async () => {
    child.kill('SIGTERM');
    await mock.close();
  };
}
