// Screenshots of what a member sees, on the reference poor link: 400 kbit/s
// down and up, 400 ms round trip, CPU 4x slower, a 360x740 phone (and 320 px
// wide). Joins from an invite link, then answers a question the steward put.
//
//   node scripts/screens.mjs OUT_DIR
//
// Needs what the browser tests need: web/app/dist, target/debug/kith and
// kith-server, and Chromium (/usr/bin/chromium or CHROMIUM=...). Prints how
// long each step took on the link; the screenshots go to OUT_DIR.

import { execFile, spawn } from 'node:child_process';
import { mkdtemp, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const run = promisify(execFile);
const appDir = fileURLToPath(new URL('..', import.meta.url));
const root = join(appDir, '..', '..');
const KITH = join(root, 'target', 'debug', 'kith');
const RELAY = join(root, 'target', 'debug', 'kith-server');
const out = process.argv[2] ?? join(tmpdir(), 'kith-screens');

const kith = async (...args) => JSON.parse((await run(KITH, [...args, '--json'])).stdout);
const port = await new Promise((resolve) => {
  const srv = createServer().listen(0, '127.0.0.1', () => {
    const { port } = srv.address();
    srv.close(() => resolve(port));
  });
});
const tmp = await mkdtemp(join(tmpdir(), 'kith-screens-'));
await mkdir(out, { recursive: true });
const base = `http://127.0.0.1:${port}`;
const relay = spawn(RELAY, ['--listen', `127.0.0.1:${port}`, '--data-dir', join(tmp, 'relay'), '--web-dir', join(appDir, 'dist'), '--open-registration', 'true'], {
  stdio: 'ignore',
});
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic'],
});
try {
  await new Promise((r) => setTimeout(r, 1500));
  const steward = join(tmp, 'steward');
  const { recipient } = await kith('keygen', '--out', join(tmp, 'research.age'));
  await kith('init', '--data-dir', steward, '--relay', base, '--alliance', 'Kitchen Table Alliance', '--cohort', 'Parents', '--name', 'Sam', '--researcher', recipient);
  const { invite } = await kith('invite', '--data-dir', steward);
  const page = await browser.newPage({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false,
    latency: 400,
    downloadThroughput: 400_000 / 8,
    uploadThroughput: 400_000 / 8,
  });
  await cdp.send('Emulation.setCPUThrottlingRate', { rate: 4 });
  const started = Date.now();
  const took = (what) => console.log(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await page.goto(invite.replace('http://localhost:8080', base));
  const name = page.getByLabel(/name/i).first();
  await name.waitFor({ timeout: 180_000 });
  took('pseudonym field shown');
  await name.fill('Robin');
  await page.getByRole('button', { name: /join/i }).click();
  // The core may still be on its way: the button says how far it has got.
  const ready = page.getByRole('button', { name: /Getting ready… [1-9]/ });
  if (await ready.waitFor({ timeout: 5_000 }).then(() => true, () => false)) {
    await page.screenshot({ path: join(out, 'join-getting-ready-360-slow.png') });
    await page.setViewportSize({ width: 320, height: 640 });
    await page.screenshot({ path: join(out, 'join-getting-ready-320-slow.png') });
    await page.setViewportSize({ width: 360, height: 740 });
  }
  await page.getByText('You are').waitFor({ timeout: 180_000 });
  took('joined');
  // Choosing the group shows who else will read it (the cohort's history setting).
  await page.getByRole('radio', { name: 'My group and the research team' }).first().check();
  await page.getByText('People invited to your group later will not read it.').waitFor();
  await page.screenshot({ path: join(out, 'write-group-360-slow.png'), fullPage: true });
  await kith('prompt', '--data-dir', steward, '--text', 'What helped most since we last met?');
  await kith('sync', '--data-dir', steward);
  const asked = page.getByRole('listitem').filter({ hasText: 'What helped most' });
  await asked.waitFor({ timeout: 120_000 });
  took('question arrived');
  await page.screenshot({ path: join(out, 'question-360-slow.png'), fullPage: true });
  await asked.getByRole('button', { name: 'Answer' }).click();
  await page.getByRole('textbox', { name: 'Your answer' }).fill('Walking the dog in the morning.');
  await page.setViewportSize({ width: 320, height: 740 });
  await page.screenshot({ path: join(out, 'answer-320-slow.png'), fullPage: true });
  await page.getByRole('button', { name: 'Save answer' }).click();
  await page.getByText('Your answer to a question').waitFor({ timeout: 60_000 });
  took('answer saved');
  await page.screenshot({ path: join(out, 'answered-320-slow.png'), fullPage: true });
  await page.getByText('Who is the research team?').click();
  await page.screenshot({ path: join(out, 'research-team-320-slow.png'), fullPage: true });
  console.log(`screenshots in ${out}`);
} catch (e) {
  const [page] = browser.contexts().flatMap((c) => c.pages());
  await page?.screenshot({ path: join(out, 'failure.png'), fullPage: true });
  throw e;
} finally {
  await browser.close();
  relay.kill();
}
