// Renders public/icon.svg to the PNG icons the manifest lists, with the
// system Chromium. Run after changing the SVG: `npm run icons`.
// The PNGs are committed, so a normal build does not need a browser.

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const publicDir = fileURLToPath(new URL('../public/', import.meta.url));
const svg = await readFile(publicDir + 'icon.svg', 'utf8');
// Maskable icons must fill the whole square; the launcher cuts the shape.
const fullBleed = svg.replace(/rx="\d+"/, 'rx="0"');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu'],
});
try {
  for (const [file, size, source] of [
    ['icon-192.png', 192, svg],
    ['icon-512.png', 512, svg],
    ['icon-maskable-512.png', 512, fullBleed],
  ]) {
    const page = await browser.newPage({ viewport: { width: size, height: size } });
    const url = 'data:image/svg+xml;base64,' + Buffer.from(source).toString('base64');
    await page.setContent(
      `<style>html,body{margin:0;background:transparent}img{display:block}</style>` +
        `<img src="${url}" width="${size}" height="${size}">`,
    );
    await page.locator('img').screenshot({ path: publicDir + file, omitBackground: true });
    await page.close();
    console.log('wrote', file);
  }
} finally {
  await browser.close();
}
