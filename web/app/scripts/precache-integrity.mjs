// A workbox manifest transform: gives every file the service worker
// precaches its SHA-256 as subresource integrity, so the browser refuses a
// file that differs from what the service worker lists. A signed release
// then needs only the service worker checked (src/release.ts).

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

const dist = new URL('../dist/', import.meta.url);

export async function withIntegrity(entries) {
  for (const entry of entries) {
    const bytes = await readFile(new URL(entry.url, dist));
    entry.integrity = `sha256-${createHash('sha256').update(bytes).digest('base64')}`;
  }
  return { manifest: entries, warnings: [] };
}
