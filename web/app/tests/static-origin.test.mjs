// The app served from its own origin, apart from the relay (docs/DEPLOYMENT.md):
// built with KITH_RELAY_ORIGINS naming the relay, served by a plain static
// file server on another port, with the relay answering that origin only
// (KITH_APP_ORIGINS). A member opens the invite link at the app's origin,
// joins, writes to their group, and the steward reads it through the relay.
// And a relay that does not name the app's origin is not reachable from it.
//
// Needs what browser.test.mjs needs (the wasm core built into src/wasm/pkg
// by cargo xtask web, target/debug/kith and kith-server, Chromium).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { appDir, CHROMIUM, freePort, kith, RELAY, SLOW, until } from './support.mjs';

const run = promisify(execFile);
const VITE = join(appDir, 'node_modules', '.bin', 'vite');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
};

/** A static file server for `dir`, as any web host is: files, and index.html for the rest. */
function staticHost(dir, port) {
  const server = createHttpServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    let file = join(dir, path);
    let body;
    try {
      body = await readFile(file);
    } catch {
      file = join(dir, 'index.html');
      body = await readFile(file);
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' });
    res.end(body);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

function startRelay(tmp, port, env) {
  return spawn(RELAY, ['--listen', `127.0.0.1:${port}`, '--data-dir', join(tmp, `relay-${port}`), '--open-registration', 'true'], {
    stdio: 'ignore',
    env: { ...process.env, ...env },
  });
}

/** Opens `invite` in a fresh phone-sized page and asks to join as Robin. */
async function tryToJoin(browser, invite) {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
  const page = await context.newPage();
  page.setDefaultTimeout(SLOW);
  await page.goto(invite);
  await page.getByLabel('Choose a name others will see (not your real name)').fill('Robin');
  await page.getByRole('button', { name: 'Join' }).click();
  return { context, page };
}

describe('Kith PWA served from its own origin, apart from the relay', () => {
  let tmp;
  let host;
  let relay;
  let browser;
  let appBase;
  let relayBase;
  const relays = [];

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'kith-static-'));
    const [appPort, relayPort] = [await freePort(), await freePort()];
    appBase = `http://127.0.0.1:${appPort}`;
    relayBase = `http://127.0.0.1:${relayPort}`;
    const dist = join(tmp, 'dist');
    await run(VITE, ['build', '--outDir', dist, '--emptyOutDir', '--logLevel', 'error'], {
      cwd: appDir,
      env: { ...process.env, KITH_RELAY_ORIGINS: relayBase },
      timeout: 120_000,
    });
    const csp = await readFile(join(dist, 'index.html'), 'utf8');
    assert.match(csp, new RegExp(`connect-src 'self' ${relayBase}[;"]`));
    host = await staticHost(dist, appPort);
    relay = startRelay(tmp, relayPort, { KITH_APP_ORIGINS: appBase });
    relays.push(relay);
    await until('the relay to answer', async () => (await fetch(`${relayBase}/healthz`)).ok);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic'] });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    for (const r of relays) if (r.exitCode === null) r.kill('SIGKILL');
    host?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('a member joins at the app origin and writes to the group through the relay', { timeout: 240_000 }, async () => {
    const steward = join(tmp, 'steward');
    await kith('init', '--data-dir', steward, '--relay', relayBase, '--alliance', 'Static Alliance', '--name', 'Sam');
    const { invite } = await kith('invite', '--data-dir', steward, '--app', appBase);
    assert.ok(invite.startsWith(`${appBase}/#join=kith2`), invite);

    const { context, page } = await tryToJoin(browser, invite);
    await page.getByText('You are Robin').waitFor();
    assert.ok(page.url().startsWith(appBase), page.url());

    const text = `Written at the app's own origin. ${randomUUID()}`;
    await page.getByRole('textbox', { name: 'Write a reflection' }).fill(text);
    await page.getByRole('radio', { name: 'My group and the research team' }).check();
    await page.getByRole('button', { name: 'Save' }).click();
    await until('it to be sent', async () => (await page.getByRole('status').textContent()).startsWith('All sent.'));
    await kith('sync', '--data-dir', steward);
    const listed = await kith('list', '--data-dir', steward);
    assert.ok(listed.contributions.some((c) => c.text === text && c.author === 'Robin'), JSON.stringify(listed));
    await context.close();
  });

  test('a relay that does not name the app origin cannot be reached from it', { timeout: 240_000 }, async () => {
    // The same build, pointed at a relay on the same address that names no
    // app origin: the browser refuses to read its answers, so joining fails
    // with a sentence and nothing joins.
    relay.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    const port = Number(new URL(relayBase).port);
    const closed = startRelay(tmp, port, { KITH_APP_ORIGINS: '' });
    relays.push(closed);
    await until('the relay to answer', async () => (await fetch(`${relayBase}/healthz`)).ok);
    const steward = join(tmp, 'steward-2');
    await kith('init', '--data-dir', steward, '--relay', relayBase, '--alliance', 'Closed Alliance', '--name', 'Sam');
    const { invite } = await kith('invite', '--data-dir', steward, '--app', appBase);
    const { context, page } = await tryToJoin(browser, invite);
    const said = await page.getByRole('alert').textContent();
    assert.match(said, /could not reach the server/, said);
    assert.equal(await page.getByText('You are Robin').count(), 0);
    const members = await kith('member', 'list', '--data-dir', steward);
    assert.ok(!JSON.stringify(members).includes('Robin'), JSON.stringify(members));
    await context.close();
  });
});
