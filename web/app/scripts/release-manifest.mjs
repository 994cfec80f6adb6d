// Writes dist/kith-release.json: every file of the built app with its
// SHA-256 and size, sorted by path. Two builds of one commit give the same
// manifest (docs/DEPLOYMENT.md says how to check), so anyone can compare
// the app a server sends with the one built from the published source.
//
//   node scripts/release-manifest.mjs [DIST_DIR]

import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const NAME = 'kith-release.json';
// Written after the manifest, by `kith release sign`.
const SIGNATURE = 'kith-release.sig';
const dist = process.argv[2] ?? fileURLToPath(new URL('../dist', import.meta.url));

async function* files(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.isFile()) yield path;
  }
}

const list = [];
for await (const path of files(dist)) {
  const name = relative(dist, path).split(sep).join('/');
  if (name === NAME || name === SIGNATURE) continue;
  const bytes = await readFile(path);
  list.push({ path: name, sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length });
}
list.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
const manifest = { format: 'kith-release/1', files: list };
await writeFile(join(dist, NAME), JSON.stringify(manifest, null, 2) + '\n');
console.log(`${NAME}: ${list.length} files`);
