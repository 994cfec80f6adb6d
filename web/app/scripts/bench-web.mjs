// `cargo xtask bench-web`: what a member waits for, and the bytes on the
// wire, step by step, on the reference poor link and unthrottled in the
// same run (scripts/web-figures.mjs). Real Chromium, a real relay serving
// the built app (web/app/dist) on its SQLite default. The figures go into
// docs/BENCHMARKS.md.
//
//   node scripts/bench-web.mjs
//
// Needs web/app/dist, target/debug/kith and kith-server, and Chromium
// (/usr/bin/chromium or CHROMIUM=...).

import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { measure, REFERENCE_LINK } from './web-figures.mjs';

const run = promisify(execFile);
const appDir = fileURLToPath(new URL('..', import.meta.url));
const root = join(appDir, '..', '..');
const KITH = join(root, 'target', 'debug', 'kith');
const RELAY = join(root, 'target', 'debug', 'kith-server');
const kith = async (...args) => JSON.parse((await run(KITH, [...args, '--json'])).stdout);

const port = await new Promise((resolve) => {
  const srv = createServer().listen(0, '127.0.0.1', () => {
    const { port } = srv.address();
    srv.close(() => resolve(port));
  });
});
const tmp = await mkdtemp(join(tmpdir(), 'kith-bench-web-'));
const base = `http://127.0.0.1:${port}`;
const relay = spawn(RELAY, ['--listen', `127.0.0.1:${port}`, '--data-dir', join(tmp, 'relay'), '--web-dir', join(appDir, 'dist'), '--open-registration', 'true'], {
  stdio: 'ignore',
});
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  for (let i = 0; ; i += 1) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {
      if (i > 100) throw new Error('the relay did not start');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const steward = join(tmp, 'steward');
  const { recipient } = await kith('keygen', '--out', join(tmp, 'research.age'));
  await kith('init', '--data-dir', steward, '--relay', base, '--alliance', 'Bench Alliance', '--name', 'Sam', '--researcher', recipient);
  const runs = {};
  for (const [name, link, member] of [['unthrottled', undefined, 'Robin'], ['reference link', REFERENCE_LINK, 'Alex']]) {
    const { invite } = await kith('invite', '--data-dir', steward);
    runs[name] = await measure(browser, { invite, link, name: member });
  }
  const fast = runs['unthrottled'];
  const slow = runs['reference link'];
  const kb = (n) => `${(n / 1000).toFixed(1)} kB`;
  console.log(`| step | unthrottled | reference link (${REFERENCE_LINK.kbps} kbit/s, ${REFERENCE_LINK.rttMs} ms, CPU ${REFERENCE_LINK.cpu}x) | ratio | down | up |`);
  console.log('|---|---|---|---|---|---|');
  for (const step of Object.keys(slow)) {
    const ratio = fast[step].ms > 0 ? `${(slow[step].ms / fast[step].ms).toFixed(1)}x` : '';
    console.log(
      `| ${step} | ${(fast[step].ms / 1000).toFixed(2)} s | ${(slow[step].ms / 1000).toFixed(2)} s | ${ratio} | ${kb(slow[step].down)} | ${kb(slow[step].up)} |`,
    );
  }
} finally {
  await browser.close();
  relay.kill();
  await rm(tmp, { recursive: true, force: true });
}
