// What the browser tests share: free ports, waiting, and the kith CLI.
// (Not a test file itself: `node --test tests/` runs only *.test.mjs.)

import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const appDir = fileURLToPath(new URL('..', import.meta.url));
export const root = join(appDir, '..', '..');
export const KITH = join(root, 'target', 'debug', 'kith');
export const RELAY = join(root, 'target', 'debug', 'kith-server');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const SLOW = 60_000;

/** A free loopback port. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Polls `check` until it returns a truthy value, or fails after `timeout` ms. */
export async function until(what, check, timeout = SLOW) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs the kith CLI with --json and parses its one JSON object. */
export async function kith(...args) {
  try {
    const { stdout } = await run(KITH, [...args, '--json'], { timeout: SLOW });
    return JSON.parse(stdout);
  } catch (e) {
    throw new Error(`kith ${args[0]} failed: ${e.stderr || e.message}`);
  }
}
