// A workbox manifest transform: gives every file the service worker
// precaches its SHA-256 as subresource integrity, so the browser refuses a
// file that differs from what the service worker lists. A signed release
// then needs only the service worker checked (src/release.ts).

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';

/** The transform, reading the built files from `where()`: the build's root and output folder. */
export function withIntegrity(where) {
  return async (entries) => {
    const { root, outDir } = where();
    const dir = resolve(root, outDir);
    for (const entry of entries) {
      const bytes = await readFile(resolve(dir, entry.url));
      entry.integrity = `sha256-${createHash('sha256').update(bytes).digest('base64')}`;
    }
    return { manifest: entries, warnings: [] };
  };
}
