// End-to-end test of the built PWA against the real relay and the real CLI:
// join from an invite link, keep working offline through the service worker,
// save a reflection that never touches storage as plaintext, send it when the
// phone is back online, and read it back with the research team's key; and
// hear, while the app is open, of what others write (live updates, or long
// polls where the stream cannot get through).
//
// Needs: web/app/dist (npm run build), target/debug/kith and kith-server
// (cargo build), and Debian's /usr/bin/chromium (or CHROMIUM=/path).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { appDir, CHROMIUM, freePort, KITH, kith, RELAY, SLOW, until } from './support.mjs';

const DIST = join(appDir, 'dist');
const AXE = join(appDir, 'node_modules', 'axe-core', 'axe.min.js');

const ALLIANCE = 'Kitchen Table Alliance';
const PSEUDONYM = 'Robin';
/** Live updates reach an open page well within this; the app's regular check is every 5 minutes. */
const LIVE_BOUND = 20_000;

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

describe('Kith PWA in Chromium, against the real relay', () => {
  let tmp;
  let relay;
  let relayLog = '';
  let base;
  let browser;
  let identityFile;
  let researcherDir;
  let stewardDir;

  before(async () => {
    for (const [path, hint] of [
      [KITH, 'build the CLI (cargo build)'],
      [RELAY, 'build the relay (cargo build)'],
      [join(DIST, 'index.html'), 'build the app (npm run build)'],
      [CHROMIUM, 'install Chromium (apt-get install chromium) or set CHROMIUM'],
    ]) {
      assert.ok(existsSync(path), `${path} is missing: ${hint}`);
    }
    tmp = await mkdtemp(join(tmpdir(), 'kith-browser-'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    relay = spawn(
      RELAY,
      // Open registration: this test creates its own alliance.
      ['--listen', `127.0.0.1:${port}`, '--data-dir', join(tmp, 'relay'), '--web-dir', DIST, '--open-registration', 'true'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (chunk) => {
      relayLog = (relayLog + chunk).slice(-20_000);
    };
    relay.stdout.on('data', keep);
    relay.stderr.on('data', keep);
    await until('the relay to answer', async () => {
      if (relay.exitCode !== null) throw new Error(`relay exited: ${relayLog}`);
      return (await fetch(base + '/')).ok;
    });

    // The research team's key, the steward's alliance, and a researcher device.
    identityFile = join(tmp, 'researcher.age');
    const { recipient } = await kith('keygen', '--out', identityFile);
    assert.match(recipient, /^age1/);
    stewardDir = join(tmp, 'steward');
    researcherDir = join(tmp, 'researcher');
    await kith('init', '--data-dir', stewardDir, '--relay', base, '--alliance', ALLIANCE,
      '--name', 'Steward', '--researcher', recipient);
    const research = await kith('invite', '--data-dir', stewardDir, '--role', 'researcher');
    await kith('join', '--data-dir', researcherDir, '--invite', research.invite, '--name', 'Research team');

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    if (relay && relay.exitCode === null) {
      const gone = new Promise((r) => relay.once('exit', r));
      relay.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5_000))]);
      if (relay.exitCode === null) relay.kill('SIGKILL');
    }
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** A fresh profile, like a phone that never opened Kith. */
  async function freshPage(options = {}) {
    const context = await browser.newContext({ viewport: { width: 360, height: 740 }, locale: 'en-GB', ...options });
    const page = await context.newPage();
    page.setDefaultTimeout(SLOW);
    return { context, page };
  }

  const statusText = (page) => page.getByRole('status').textContent();

  /** Joins from a new invite into the steward's cohort, and waits for the first sync. */
  async function joinAs(page, name) {
    const { invite } = await kith('invite', '--data-dir', stewardDir);
    await page.goto(invite);
    await page.getByLabel('Choose a name others will see (not your real name)').fill(name);
    await page.getByRole('button', { name: 'Join' }).click();
    await page.getByText(`You are ${name}`).waitFor();
    await until('the first sync to finish', async () => (await statusText(page)).startsWith('All sent.'));
  }

  /**
   * The steward writes for its cohort (the CLI's default audience) and sends
   * it; returns how long the member's open page took to show it. The app's
   * regular check is every 5 minutes: well under LIVE_BOUND, it was heard live.
   */
  async function stewardWritesAndPageShows(page) {
    const text = `The steward says hello to the group. ${randomUUID()}`;
    // The page is not reloaded: this mark would be gone.
    await page.evaluate(() => {
      window.kithTestMark = true;
    });
    await kith('contribute', '--data-dir', stewardDir, '--text', text);
    const start = Date.now();
    await kith('sync', '--data-dir', stewardDir);
    await page.getByRole('listitem').filter({ hasText: text }).waitFor({ timeout: LIVE_BOUND });
    const took = Date.now() - start;
    assert.equal(await page.evaluate(() => window.kithTestMark), true, 'the page was not reloaded');
    const item = page.getByRole('listitem').filter({ hasText: text });
    assert.equal(await item.getByText('Only the research team can read this.').count(), 0);
    return took;
  }

  test('join, go offline, save, come back online, and the research team can read it', { timeout: 300_000 }, async () => {
    const { invite } = await kith('invite', '--data-dir', stewardDir);
    assert.match(invite, /#join=kith2/);
    const { context, page } = await freshPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    try {
      // Join from the link.
      await page.goto(invite);
      await page.getByLabel('Choose a name others will see (not your real name)').fill(PSEUDONYM);
      await page.getByRole('button', { name: 'Join' }).click();
      await page.getByRole('heading', { level: 1, name: ALLIANCE }).waitFor();
      await page.getByText(`You are ${PSEUDONYM}`).waitFor();
      assert.ok(!page.url().includes('#join'), `the invite must leave the address bar: ${page.url()}`);
      assert.ok(!page.url().includes('kith2'));
      assert.equal(await page.evaluate(() => location.hash), '');

      // The service worker is installed and, after a reload, controls the page.
      await page.evaluate(async () => {
        await navigator.serviceWorker.ready;
      });
      await page.reload();
      await until('the service worker to control the page', () =>
        page.evaluate(() => navigator.serviceWorker.controller !== null),
      );
      await page.getByRole('heading', { level: 1, name: ALLIANCE }).waitFor();
      await until('the first sync to finish', async () => (await statusText(page)).startsWith('All sent.'));

      // Accessibility of the main screen.
      await page.evaluate(await readFile(AXE, 'utf8'));
      const results = await page.evaluate(() => window.axe.run(document));
      const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      assert.deepEqual(
        bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`),
        [],
        'axe-core found serious or critical problems',
      );

      // The member can see who the research team is, by the keys' fingerprints,
      // the same as the command line shows the steward.
      const team = await kith('research-team', 'list', '--data-dir', stewardDir);
      assert.equal(team.research_team.length, 1);
      await page.getByText('Who is the research team?').click();
      for (const { fingerprint } of team.research_team) {
        await page.getByText(fingerprint).waitFor();
      }

      // Offline: the app still opens from the service worker's cache.
      await context.setOffline(true);
      await page.reload();
      await page.getByRole('heading', { level: 1, name: ALLIANCE }).waitFor();

      // Save a reflection while offline.
      const canary = `canary-${randomUUID()}`;
      const text = `Today the group listened well. ${canary}`;
      await page.getByRole('textbox', { name: 'Write a reflection' }).fill(text);
      await page.getByRole('button', { name: 'Save' }).click();
      await until('the status to say it is saved on this phone', async () =>
        (await statusText(page)).includes('Saved on this phone'),
      );
      await page.getByRole('listitem').filter({ hasText: canary }).waitFor();
      // The default: for the research team only, and the list says so.
      await page
        .getByRole('listitem')
        .filter({ hasText: canary })
        .getByText('Only the research team can read this.')
        .waitFor();
      assert.equal(await page.getByRole('textbox', { name: 'Write a reflection' }).inputValue(), '', 'the box is cleared');

      // Nothing stored in the browser holds the text in plaintext.
      const scan = await page.evaluate(async (needle) => {
        const decoder = new TextDecoder('utf-8', { fatal: false });
        const found = [];
        let records = 0;
        const search = (where, value, seen = new Set()) => {
          if (value === null || value === undefined) return;
          if (typeof value === 'string') {
            if (value.includes(needle)) found.push(where);
          } else if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
            const bytes = value instanceof ArrayBuffer
              ? new Uint8Array(value)
              : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
            if (decoder.decode(bytes).includes(needle)) found.push(where);
          } else if (value instanceof Blob) {
            found.push(`${where}: unexpected Blob`);
          } else if (typeof value === 'object' && !seen.has(value)) {
            seen.add(value);
            for (const [k, v] of Object.entries(value)) search(`${where}.${k}`, v, seen);
          }
        };
        const dbs = await indexedDB.databases();
        for (const { name } of dbs) {
          const db = await new Promise((resolve, reject) => {
            const req = indexedDB.open(name);
            req.onsuccess = () => resolve(req.result);
            req.onerror = () => reject(req.error);
          });
          for (const store of db.objectStoreNames) {
            const [keys, values] = await new Promise((resolve, reject) => {
              const tx = db.transaction(store, 'readonly');
              const s = tx.objectStore(store);
              const k = s.getAllKeys();
              const v = s.getAll();
              tx.oncomplete = () => resolve([k.result, v.result]);
              tx.onerror = () => reject(tx.error);
            });
            values.forEach((v, i) => {
              records += 1;
              search(`${name}/${store}/${String(keys[i])}`, v);
              search(`${name}/${store}/key`, keys[i]);
            });
          }
          db.close();
        }
        for (const [label, area] of [['localStorage', localStorage], ['sessionStorage', sessionStorage]]) {
          for (let i = 0; i < area.length; i++) {
            const key = area.key(i);
            search(`${label}/${key}`, `${key}${area.getItem(key)}`);
          }
        }
        return { databases: dbs.map((d) => d.name), records, found };
      }, canary);
      assert.ok(scan.databases.includes('kith'), `the app's database exists: ${scan.databases}`);
      assert.ok(scan.records >= 2, `expected the state and at least one blob, got ${scan.records} records`);
      assert.deepEqual(scan.found, [], 'plaintext found in browser storage');

      // Back online: it is sent.
      await context.setOffline(false);
      await until('the status to say all sent', async () => (await statusText(page)).startsWith('All sent.'), 90_000);

      // The research team reads it with their own key.
      const exported = await kith('export', '--data-dir', researcherDir, '--identity', identityFile, '--format', 'json');
      const mine = exported.contributions.filter((c) => c.text.includes(canary));
      assert.equal(mine.length, 1, `exactly one reflection with the canary: ${JSON.stringify(exported)}`);
      assert.equal(mine[0].text, text);
      assert.equal(mine[0].author, PSEUDONYM);

      // It was for the research team only (the app's default): the steward,
      // in the same cohort, cannot read it.
      await kith('sync', '--data-dir', stewardDir);
      const cohortView = await kith('list', '--data-dir', stewardDir);
      assert.ok(
        !cohortView.contributions.some((c) => c.text.includes(canary)),
        'a research-only reflection reached the cohort',
      );

      // Shared with the group on purpose: the cohort reads that one.
      const shared = `We could meet earlier in the day. ${randomUUID()}`;
      await page.getByRole('radio', { name: 'My group and the research team' }).check();
      await page.getByRole('textbox', { name: 'Write a reflection' }).fill(shared);
      await page.getByRole('button', { name: 'Save' }).click();
      await until('the cohort to read what was shared with it', async () => {
        await kith('sync', '--data-dir', stewardDir);
        const listed = await kith('list', '--data-dir', stewardDir);
        return listed.contributions.some((c) => c.text === shared);
      }, 90_000);

      assert.deepEqual(errors, [], 'no uncaught errors in the page');
    } catch (e) {
      await page.screenshot({ path: join(tmpdir(), 'kith-browser-failure.png') }).catch(() => {});
      console.error(`relay log (tail):\n${relayLog.slice(-4000)}`);
      throw e;
    } finally {
      await context.close();
    }
  });

  test('a member edits and deletes their own reflections, and the cohort sees the change', { timeout: 180_000 }, async () => {
    const { context, page } = await freshPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    try {
      // A name someone has already (Robin joined in the first test) is
      // refused with a sentence; another name then works with the same link.
      const { invite } = await kith('invite', '--data-dir', stewardDir);
      await page.goto(invite);
      const nameBox = page.getByLabel('Choose a name others will see (not your real name)');
      await nameBox.fill('ROBIN');
      await page.getByRole('button', { name: 'Join' }).click();
      await page.getByRole('alert').filter({ hasText: 'already goes by' }).waitFor();
      // The core's error reached the page with its code: the name box is focused to change.
      assert.equal(await nameBox.evaluate((el) => el === document.activeElement), true);
      await nameBox.fill('Kai');
      await page.getByRole('button', { name: 'Join' }).click();
      await page.getByText('You are Kai').waitFor();
      await until('the first sync to finish', async () => (await statusText(page)).startsWith('All sent.'));
      const write = async (text) => {
        await page.getByRole('radio', { name: 'My group and the research team' }).check();
        await page.getByRole('textbox', { name: 'Write a reflection' }).fill(text);
        await page.getByRole('button', { name: 'Save' }).click();
        await page.getByRole('listitem').filter({ hasText: text }).waitFor();
      };
      const tag = randomUUID();
      const typo = `We shoud meet in the library. ${tag}`;
      const regret = `Something I did not mean to share. ${tag}`;
      await write(typo);
      await write(regret);

      // Only the member's own reflections offer Edit and Delete.
      const own = page.getByRole('listitem').filter({ hasText: typo });
      await own.getByRole('button', { name: 'Edit' }).click();
      // One editor is open; while it is, the item's text is in the box.
      const box = page.getByRole('textbox', { name: 'Change your reflection' });
      assert.equal(await box.inputValue(), typo);
      if (process.env.KITH_SCREENSHOTS) {
        await page.screenshot({ path: join(process.env.KITH_SCREENSHOTS, 'edit-360.png'), fullPage: true });
      }
      // An empty text is refused with a sentence, and nothing changes.
      await box.fill('   ');
      await page.getByRole('button', { name: 'Save changes' }).click();
      await page.getByRole('alert').filter({ hasText: 'Write something first' }).waitFor();
      const fixed = `We should meet in the library. ${tag}`;
      await box.fill(fixed);
      await page.getByRole('button', { name: 'Save changes' }).click();
      await page.getByRole('listitem').filter({ hasText: fixed }).waitFor();
      assert.equal(await page.getByRole('listitem').filter({ hasText: typo }).count(), 0);

      const gone = page.getByRole('listitem').filter({ hasText: regret });
      await gone.getByRole('button', { name: 'Delete' }).click();
      if (process.env.KITH_SCREENSHOTS) {
        await page.setViewportSize({ width: 320, height: 740 });
        await page.screenshot({ path: join(process.env.KITH_SCREENSHOTS, 'delete-320.png'), fullPage: true });
        await page.setViewportSize({ width: 360, height: 740 });
      }
      // "Keep it" keeps it; "Yes, delete it" deletes it.
      await gone.getByRole('button', { name: 'Keep it' }).click();
      await gone.getByRole('button', { name: 'Delete' }).click();
      await gone.getByRole('button', { name: 'Yes, delete it' }).click();
      await until('the deleted reflection to leave the list', async () =>
        (await page.getByRole('listitem').filter({ hasText: regret }).count()) === 0,
      );

      // The steward's own writing shows without Edit or Delete.
      await stewardWritesAndPageShows(page);
      const theirs = page.getByRole('listitem').filter({ hasText: 'The steward says hello' }).first();
      assert.equal(await theirs.getByRole('button', { name: 'Edit' }).count(), 0);
      assert.equal(await theirs.getByRole('button', { name: 'Delete' }).count(), 0);

      // A question the steward puts to the group shows as one, from them.
      const question = `What helped most since we last met? ${tag}`;
      await kith('prompt', '--data-dir', stewardDir, '--text', question);
      await kith('sync', '--data-dir', stewardDir);
      const asked = page.getByRole('listitem').filter({ hasText: question });
      await asked.waitFor({ timeout: LIVE_BOUND });
      await asked.getByText('A question from Steward').waitFor();
      assert.equal(await asked.getByRole('button', { name: 'Edit' }).count(), 0);
      if (process.env.KITH_SCREENSHOTS) {
        await page.screenshot({ path: join(process.env.KITH_SCREENSHOTS, 'question-360.png'), fullPage: true });
      }

      // The member answers it, for their group too; the answer names the question.
      await asked.getByRole('button', { name: 'Answer' }).click();
      const answerBox = page.getByRole('textbox', { name: 'Your answer' });
      await page.getByRole('button', { name: 'Save answer' }).click();
      await page.getByRole('alert').filter({ hasText: 'Write your answer first' }).waitFor();
      const reply = `Walking the dog helps. ${tag}`;
      await answerBox.fill(reply);
      await asked.getByLabel('My group and the research team').check();
      if (process.env.KITH_SCREENSHOTS) {
        await page.screenshot({ path: join(process.env.KITH_SCREENSHOTS, 'answer-360.png'), fullPage: true });
      }
      await page.getByRole('button', { name: 'Save answer' }).click();
      const answered = page.getByRole('listitem').filter({ hasText: reply });
      await answered.getByText('Your answer to a question').waitFor();
      await until('the steward to read the answer, naming the question', async () => {
        await kith('sync', '--data-dir', stewardDir);
        const items = (await kith('list', '--data-dir', stewardDir)).contributions;
        const q = items.find((c) => c.text === question);
        return items.some((c) => c.text === reply && c.kind === 'response' && q && c.prompt === q.id);
      }, 90_000);

      // The cohort sees the current text, and not the deleted one.
      await until('the cohort to see the edit and the deletion', async () => {
        await kith('sync', '--data-dir', stewardDir);
        const texts = (await kith('list', '--data-dir', stewardDir)).contributions.map((c) => c.text);
        return texts.includes(fixed) && !texts.includes(typo) && !texts.includes(regret);
      }, 90_000);
      assert.deepEqual(errors, [], 'no uncaught errors in the page');
    } catch (e) {
      await page.screenshot({ path: join(tmpdir(), 'kith-browser-failure.png') }).catch(() => {});
      console.error(`relay log (tail):\n${relayLog.slice(-4000)}`);
      throw e;
    } finally {
      await context.close();
    }
  });

  test('what the steward writes appears on an open page without reloading (live updates)', { timeout: 180_000 }, async () => {
    const { context, page } = await freshPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const streams = [];
    page.on('response', (r) => {
      if (new URL(r.url()).pathname.endsWith('/events')) streams.push(r);
    });
    try {
      await joinAs(page, 'Kim');
      // The page listens on the relay's event stream.
      const stream = await until('the page to open the live updates stream', () => streams.find((r) => r.status() === 200));
      assert.match(await stream.headerValue('content-type'), /^text\/event-stream/);

      const took = await stewardWritesAndPageShows(page);
      console.log(`live update (event stream): shown ${took} ms after the steward's sync`);
      // And again, on the same stream.
      const again = await stewardWritesAndPageShows(page);
      console.log(`live update (event stream), second: shown ${again} ms after the steward's sync`);
      assert.equal(streams.filter((r) => r.status() === 200).length, 1, 'one stream stayed open throughout');
      assert.deepEqual(errors, [], 'no uncaught errors in the page');
    } catch (e) {
      await page.screenshot({ path: join(tmpdir(), 'kith-browser-live-failure.png') }).catch(() => {});
      console.error(`relay log (tail):\n${relayLog.slice(-4000)}`);
      throw e;
    } finally {
      await context.close();
    }
  });

  test('where a proxy refuses the event stream, long polls bring the news instead', { timeout: 180_000 }, async () => {
    // No service worker between the page and the network, so the route sees every request.
    const { context, page } = await freshPage({ serviceWorkers: 'block' });
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    let refused = 0;
    await page.route('**/events', (route) => {
      refused += 1;
      return route.fulfill({ status: 502, contentType: 'text/plain', body: 'Bad Gateway' });
    });
    const polls = [];
    page.on('request', (r) => {
      if (new URL(r.url()).searchParams.has('wait')) polls.push(r);
    });
    try {
      await joinAs(page, 'Sasha');
      await until('the page to try the stream', () => refused > 0);
      await until('the page to wait at the relay (long poll)', () => polls.length > 0);

      const took = await stewardWritesAndPageShows(page);
      console.log(`live update (long poll): shown ${took} ms after the steward's sync`);
      assert.equal(refused, 1, 'after one refusal it long-polls and does not keep asking for the stream');
      assert.deepEqual(errors, [], 'no uncaught errors in the page');
    } catch (e) {
      await page.screenshot({ path: join(tmpdir(), 'kith-browser-poll-failure.png') }).catch(() => {});
      console.error(`relay log (tail):\n${relayLog.slice(-4000)}`);
      throw e;
    } finally {
      await context.close();
    }
  });

  test('it stops listening while the page is hidden or offline, and listens again after', { timeout: 180_000 }, async () => {
    const { context, page } = await freshPage();
    const opened = [];
    const ended = [];
    page.on('request', (r) => {
      if (new URL(r.url()).pathname.endsWith('/events')) opened.push(r);
    });
    page.on('requestfailed', (r) => {
      if (new URL(r.url()).pathname.endsWith('/events')) ended.push(r.failure()?.errorText);
    });
    /** What a phone does when the app goes to the background and back. */
    const show = (state) =>
      page.evaluate((state) => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
        document.dispatchEvent(new Event('visibilitychange'));
      }, state);
    try {
      await joinAs(page, 'Jo');
      await until('the stream to open', () => opened.length === 1);
      await show('hidden');
      await until('the stream to close when hidden', () => ended.length === 1);
      await new Promise((r) => setTimeout(r, 2_000));
      assert.equal(opened.length, 1, 'no stream while the page is hidden');
      await show('visible');
      await until('the stream to open again when visible', () => opened.length === 2);
      await context.setOffline(true);
      await until('the stream to close when offline', () => ended.length === 2);
      await context.setOffline(false);
      await until('the stream to open again when online', () => opened.length === 3);
      // And it still works.
      await stewardWritesAndPageShows(page);
    } finally {
      await context.close();
    }
  });

  test('with no saved device and no invite, it says to open the invite link', async () => {
    const { context, page } = await freshPage();
    try {
      await page.goto(base + '/');
      await page.getByText('Open the invite link you were sent to join.').waitFor();
    } finally {
      await context.close();
    }
  });

  test('a broken or used invite gives a clear message', async () => {
    const { context, page } = await freshPage();
    try {
      await page.goto(base + '/#join=kith2notarealinvite');
      await page.getByLabel('Choose a name others will see (not your real name)').fill('Sam');
      await page.getByRole('button', { name: 'Join' }).click();
      const alert = page.getByRole('alert').filter({ hasText: 'Could not join' });
      await alert.waitFor();
      assert.match(await alert.textContent(), /invite is not valid/);
    } finally {
      await context.close();
    }

    // An invite someone else already used.
    const { invite } = await kith('invite', '--data-dir', stewardDir);
    await kith('join', '--data-dir', join(tmp, 'someone-else'), '--invite', invite, '--name', 'Alex');
    const second = await freshPage();
    try {
      await second.page.goto(invite);
      await second.page.getByLabel('Choose a name others will see (not your real name)').fill('Sam');
      await second.page.getByRole('button', { name: 'Join' }).click();
      const alert = second.page.getByRole('alert').filter({ hasText: 'Could not join' });
      await alert.waitFor();
      assert.match(await alert.textContent(), /already used/);
    } finally {
      await second.context.close();
    }
  });
});
