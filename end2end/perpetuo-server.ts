import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';

export interface RunningPerpetuo {
  url: string;
  /** Everything it logged so far (stderr). */
  log: () => string;
  stop: () => Promise<void>;
}

/**
 * Starts the built `perpetuo` binary on 127.0.0.1:0 with a fresh in-memory database, fresh
 * secrets and `env` on top (nothing else from this environment), and reads the address it got from its log.
 */
export async function startPerpetuo(env: Record<string, string>): Promise<RunningPerpetuo> {
  const root = path.resolve(__dirname, '..');
  const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(root, 'target');
  const bin = path.resolve(process.env.PERPETUO_BIN ?? path.join(targetDir, 'debug', 'perpetuo'));
  const siteRoot = path.resolve(process.env.LEPTOS_SITE_ROOT ?? path.join(targetDir, 'site'));
  const child: ChildProcess = spawn(bin, [], {
    // Not the checkout: a developer's .env there must not change what the tests run.
    cwd: os.tmpdir(),
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: 'mem://',
      ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      JWT_SECRET: randomBytes(48).toString('base64url'),
      LEPTOS_SITE_ADDR: '127.0.0.1:0',
      LEPTOS_SITE_ROOT: siteRoot,
      RUST_LOG: process.env.RUST_LOG ?? 'info',
      ...env,
    },
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  let seen = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    if (process.env.E2E_SERVER_LOG) process.stderr.write(text);
    seen += text;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('perpetuo did not start within 60 s')), 60_000);
    const look = () => {
      const match = seen.match(/listening on (http:\/\/[0-9.]+:\d+)/);
      if (match) {
        clearTimeout(timer);
        child.stderr!.off('data', look);
        resolve(match[1]);
      }
    };
    child.stderr!.on('data', look);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${bin}: ${error.message}`));
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`perpetuo exited early with ${code}:\n${seen}`));
    });
  });
  return {
    url,
    log: () => seen,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
