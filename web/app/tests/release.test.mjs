// Signed releases (docs/DEPLOYMENT.md, "Signed releases"): the steward pins
// a release key in the alliance; a joined phone then offers an update only
// when the service worker the server sends belongs to a release signed with
// that key, and says so when it does not. The relay serves a copy of the
// built app from a folder the test changes, as a hacked or compelled server
// would.
//
// Needs what browser.test.mjs needs (the app built by cargo xtask web,
// target/debug/kith and kith-server, Chromium).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { appDir, CHROMIUM, freePort, kith, RELAY, SLOW, until } from './support.mjs';

const run = promisify(execFile);

describe('Kith PWA takes only updates signed with the alliance release key', () => {
  let tmp;
  let site;
  let relay;
  let browser;
  let invite;
  let pinned;
  let other;

  /** Writes a build's manifest again (the site's, unless `dir`), as a build does, and signs it with `keyFile`. */
  async function release(keyFile, dir = site) {
    await run(process.execPath, [join(appDir, 'scripts', 'release-manifest.mjs'), dir]);
    await kith('release', 'sign', '--key', keyFile, '--dir', dir);
  }

  /** Changes a file, dropping its compressed copies (a build would write them again). */
  async function change(path, write) {
    await write(join(site, path));
    await rm(join(site, `${path}.br`), { force: true });
    await rm(join(site, `${path}.gz`), { force: true });
  }

  /** Changes the service worker's bytes, as any new version does. */
  async function newServiceWorker(mark) {
    await change('sw.js', (file) => appendFile(file, `\n// ${mark}\n`));
  }

  /**
   * Publishes a new service worker signed with `keyFile`: made and signed in
   * a copy, then put in place with the service worker last, so the app (which
   * looks for updates by itself too) never sees it before its signature.
   */
  async function publish(mark, keyFile) {
    const build = join(tmp, 'new-build');
    await rm(build, { recursive: true, force: true });
    await cp(site, build, { recursive: true });
    await rm(join(build, 'sw.js.br'), { force: true });
    await rm(join(build, 'sw.js.gz'), { force: true });
    await appendFile(join(build, 'sw.js'), `\n// ${mark}\n`);
    await release(keyFile, build);
    for (const file of ['kith-release.json', 'kith-release.sig']) await cp(join(build, file), join(site, file));
    await change('sw.js', (file) => cp(join(build, 'sw.js'), file));
  }

  /** Asks the browser to look for an update now (it would at the next visit). */
  async function lookForUpdate(page) {
    await page.evaluate(async () => {
      const registration = await navigator.serviceWorker.getRegistration();
      await registration.update();
    });
  }

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'kith-release-'));
    site = join(tmp, 'site');
    await cp(join(appDir, 'dist'), site, { recursive: true });
    pinned = join(tmp, 'release.key');
    other = join(tmp, 'other.key');
    const { release_key: key } = await kith('release', 'keygen', '--out', pinned);
    await kith('release', 'keygen', '--out', other);
    await release(pinned);
    const check = await kith('release', 'verify', '--key', key, '--dir', site);
    assert.ok(check.files > 5, JSON.stringify(check));

    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    relay = spawn(
      RELAY,
      ['--listen', `127.0.0.1:${port}`, '--data-dir', join(tmp, 'relay'), '--web-dir', site, '--open-registration', 'true'],
      { stdio: 'ignore' },
    );
    await until('the relay to answer', async () => (await fetch(`${base}/healthz`)).ok);
    const steward = join(tmp, 'steward');
    await kith('init', '--data-dir', steward, '--relay', base, '--alliance', 'Signed Alliance', '--name', 'Sam');
    const pin = await kith('release', 'pin', '--data-dir', steward, '--key', key);
    assert.equal(pin.release_key, key);
    ({ invite } = await kith('invite', '--data-dir', steward));
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  after(async () => {
    await browser?.close();
    relay?.kill();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('an unsigned update is refused and named, and so is an unsigned copy running; a signed one is offered; a swapped file never installs', { timeout: 300_000 }, async () => {
    const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
    let page = await context.newPage();
    page.setDefaultTimeout(SLOW);
    await page.goto(invite);
    await page.getByLabel('Choose a name others will see (not your real name)').fill('Robin');
    await page.getByRole('button', { name: 'Join' }).click();
    await page.getByRole('heading', { level: 1, name: 'Signed Alliance' }).waitFor();
    // Installed on the first visit, the service worker controls the page after a reload.
    await page.evaluate(async () => {
      await navigator.serviceWorker.ready;
    });
    await page.reload();
    await until('the service worker to control the page', () =>
      page.evaluate(() => navigator.serviceWorker.controller !== null),
    );
    let warning = page.getByRole('alert').filter({ hasText: 'not signed by your alliance' });
    let updateNow = page.getByRole('button', { name: 'Update now' });
    assert.equal(await warning.count(), 0, 'the release it runs is signed');

    // 1. A new service worker with no new signature: not offered, and said.
    await newServiceWorker('unsigned');
    await lookForUpdate(page);
    await warning.filter({ hasText: 'An update to Kith' }).waitFor();
    assert.equal(await updateNow.count(), 0, 'no button offers the unsigned update');
    // KITH_SCREENS=DIR keeps screenshots of the warning, to look at.
    if (process.env.KITH_SCREENS) {
      await page.screenshot({ path: join(process.env.KITH_SCREENS, 'unsigned-update-360.png') });
      await page.setViewportSize({ width: 320, height: 640 });
      await page.screenshot({ path: join(process.env.KITH_SCREENS, 'unsigned-update-320.png') });
      await page.setViewportSize({ width: 360, height: 740 });
    }

    // 1b. Kith closed: the browser switches to the waiting update by itself
    // (a web page cannot stop that). The copy now running says it is not signed.
    const home = new URL('/', page.url()).href;
    await page.close();
    page = await context.newPage();
    page.setDefaultTimeout(SLOW);
    await page.goto(home);
    await until('the unsigned version to run', async () => {
      const running = await page.evaluate(async () => {
        const script = navigator.serviceWorker.controller?.scriptURL;
        return Boolean(script) && (await (await fetch(script, { cache: 'no-store' })).text()).includes('// unsigned');
      });
      if (!running) await page.reload();
      return running;
    });
    warning = page.getByRole('alert').filter({ hasText: 'not signed by your alliance' });
    updateNow = page.getByRole('button', { name: 'Update now' });
    await warning.filter({ hasText: 'This copy of Kith' }).waitFor();

    // 2. Signed, but with a key the alliance did not pin: the same.
    await publish('other key', other);
    await lookForUpdate(page);
    await warning.filter({ hasText: 'An update to Kith' }).waitFor();
    await until('the newest update to be checked too', async () => (await page.evaluate(async () => {
      const r = await navigator.serviceWorker.getRegistration();
      return r.waiting && (await (await fetch(r.waiting.scriptURL, { cache: 'no-store' })).text()).includes('// other key');
    })));
    await page.waitForTimeout(1000);
    assert.equal(await updateNow.count(), 0, 'no button offers an update signed with another key');

    // 3. Signed with the pinned key: offered, and taken.
    await publish('signed', pinned);
    await lookForUpdate(page);
    await updateNow.waitFor();
    assert.equal(await warning.count(), 0);
    await updateNow.click();
    await until('the signed version to run', async () => (await page.evaluate(async () => {
      const script = navigator.serviceWorker.controller?.scriptURL;
      return script && (await (await fetch(script, { cache: 'no-store' })).text()).includes('// signed');
    })));
    await page.getByRole('heading', { level: 1, name: 'Signed Alliance' }).waitFor();
    assert.equal(await warning.count(), 0, 'the signed version raises no warning');

    // 4. A signed service worker whose files the server swaps: it lists each
    // file's hash, so the browser refuses to install it. (A new build that
    // changes icon.svg, signed; then the server sends other bytes.)
    const icon = join(site, 'icon.svg');
    const original = await readFile(icon, 'utf8');
    const rebuilt = original.replace('</svg>', '<!-- new build --></svg>');
    const swPath = join(site, 'sw.js');
    const sw = await readFile(swPath, 'utf8');
    const oldIntegrity = `sha256-${createHash('sha256').update(original).digest('base64')}`;
    const newIntegrity = `sha256-${createHash('sha256').update(rebuilt).digest('base64')}`;
    assert.ok(sw.includes(oldIntegrity), 'the service worker lists icon.svg by its hash');
    const entry = new RegExp(`url:"icon\\.svg",revision:"([0-9a-f]+)"`);
    assert.match(sw, entry, 'the service worker lists icon.svg with a revision');
    // The new build is made and signed in a copy, so the server never sends
    // it whole (the app looks for updates by itself too); the server's copy
    // gets the swapped icon first, then the signed files, the service worker last.
    const build = join(tmp, 'new-build');
    await rm(build, { recursive: true, force: true });
    await cp(site, build, { recursive: true });
    for (const path of ['sw.js', 'icon.svg']) {
      await rm(join(build, `${path}.br`), { force: true });
      await rm(join(build, `${path}.gz`), { force: true });
    }
    const newSw = sw.replace(entry, 'url:"icon.svg",revision:"newbuild"').replace(oldIntegrity, newIntegrity);
    await writeFile(join(build, 'sw.js'), newSw);
    await writeFile(join(build, 'icon.svg'), rebuilt);
    await release(pinned, build);
    await change('icon.svg', (file) => writeFile(file, original.replace('</svg>', '<!-- swapped by the server --></svg>')));
    for (const file of ['kith-release.json', 'kith-release.sig']) await cp(join(build, file), join(site, file));
    await change('sw.js', (file) => writeFile(file, newSw));
    await page.evaluate(async () => {
      const registration = await navigator.serviceWorker.getRegistration();
      await registration.update();
    });
    await until('the browser to give up installing it', () =>
      page.evaluate(async () => {
        const r = await navigator.serviceWorker.getRegistration();
        return !r.installing && !r.waiting;
      }),
    );
    assert.equal(await updateNow.count(), 0, 'nothing is offered');
    assert.ok(
      (await page.evaluate(async () => (await (await fetch('/sw.js', { cache: 'no-store' })).text()).includes('newbuild'))),
      'the server did send the new service worker',
    );
    await context.close();
  });
});
