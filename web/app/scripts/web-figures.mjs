// What a member waits for, and the bytes on the wire, step by step, in a
// real Chromium against a real relay: the first visit of an invite link, the
// join, saving and sending one reflection, saving one offline, and the
// repeat visit. Shared by `cargo xtask bench-web` (scripts/bench-web.mjs),
// which prints the figures, and tests/budgets.test.mjs, which holds them
// to the budgets with room to spare.

/** The reference poor link: 400 kbit/s both ways, 400 ms round trip, CPU 4x slower. */
export const REFERENCE_LINK = { kbps: 400, rttMs: 400, cpu: 4 };

const FIELD = 'Choose a name others will see (not your real name)';
const BOX = 'Write a reflection';

/**
 * Runs the steps in a fresh phone-sized context of `browser`, on `link`
 * (or unthrottled when it is undefined). `invite` is an invite link to the
 * relay at `base`; `name` is the pseudonym to join with (one per alliance). Returns `{ step: { ms, down, up } }`; `down` and `up`
 * count bytes of headers and bodies as sent (compressed).
 */
export async function measure(browser, { invite, link, name = 'Robin' }) {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  let down = 0;
  let up = 0;
  context.on('requestfinished', async (request) => {
    try {
      const sizes = await request.sizes();
      down += sizes.responseHeadersSize + sizes.responseBodySize;
      up += sizes.requestHeadersSize + sizes.requestBodySize;
      if (process.env.KITH_BENCH_DETAIL) {
        const path = new URL(request.url()).pathname;
        console.error(`  ${request.method()} ${path}: down ${sizes.responseHeadersSize}+${sizes.responseBodySize}, up ${sizes.requestHeadersSize}+${sizes.requestBodySize}`);
      }
    } catch {
      // A request whose sizes are gone (its page closed): not counted.
    }
  });
  const figures = {};
  let page;
  const open = async () => {
    page = await context.newPage();
    page.setDefaultTimeout(180_000);
    if (link) {
      const cdp = await context.newCDPSession(page);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', {
        offline: false,
        latency: link.rttMs,
        downloadThroughput: (link.kbps * 1000) / 8,
        uploadThroughput: (link.kbps * 1000) / 8,
      });
      await cdp.send('Emulation.setCPUThrottlingRate', { rate: link.cpu });
    }
  };
  // Each step: the time from its start until `done` resolves, and the bytes
  // counted meanwhile (a moment is left for the last sizes to arrive).
  const step = async (name, run, done) => {
    const [downBefore, upBefore] = [down, up];
    if (process.env.KITH_BENCH_DETAIL) console.error(`${name}:`);
    const started = performance.now();
    await run();
    await done();
    const ms = performance.now() - started;
    await new Promise((r) => setTimeout(r, 300));
    figures[name] = { ms: Math.round(ms), down: down - downBefore, up: up - upBefore };
  };
  const status = () => page.getByRole('status').first().textContent();
  const until = async (check) => {
    for (;;) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };

  try {
    await open();
    await step(
      'first visit: invite link to a usable name field',
      () => page.goto(invite, { waitUntil: 'commit' }),
      () => page.getByLabel(FIELD).waitFor(),
    );
    await page.getByLabel(FIELD).fill(name);
    await step(
      'join (from pressing Join)',
      () => page.getByRole('button', { name: 'Join' }).click(),
      () => page.getByText('You are').waitFor(),
    );
    await until(async () => (await status()).startsWith('All sent.'));
    await page.getByRole('textbox', { name: BOX }).fill('The group listened well today, and we agreed to meet earlier.');
    await step(
      'save and send one reflection',
      () => page.getByRole('button', { name: 'Save' }).click(),
      () => until(async () => (await status()).startsWith('All sent.') && (await page.getByRole('textbox', { name: BOX }).inputValue()) === ''),
    );
    // The service worker controls the page from the next load on.
    await page.evaluate(async () => {
      await navigator.serviceWorker.ready;
    });
    await context.setOffline(true);
    await page.getByRole('textbox', { name: BOX }).fill('Written on the bus, with no signal.');
    await step(
      'save one reflection offline',
      () => page.getByRole('button', { name: 'Save' }).click(),
      () => until(async () => (await status()).includes('Saved on this phone')),
    );
    await context.setOffline(false);
    await until(async () => (await status()).startsWith('All sent.'));
    const home = new URL('/', page.url()).href;
    await page.close();
    await open();
    await step(
      'repeat visit: to a usable writing box',
      () => page.goto(home, { waitUntil: 'commit' }),
      async () => {
        const box = page.getByRole('textbox', { name: BOX });
        await box.waitFor();
        await until(() => box.isEditable());
      },
    );
    return figures;
  } finally {
    await context.close();
  }
}
