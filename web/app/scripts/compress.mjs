// Writes a brotli (.br) and a gzip (.gz) copy beside each file of the built
// app that shrinks, for servers to send to browsers that accept them (the
// relay does, server/src/web.rs; docs/DEPLOYMENT.md says how a static host
// does). Both at their highest settings: the build runs once, members
// download many times. The output is the same bytes every run.
//
//   node scripts/compress.mjs [DIST_DIR]

import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = process.argv[2] ?? fileURLToPath(new URL('../dist', import.meta.url));
// Images in PNG are compressed already.
const KINDS = new Set(['.html', '.js', '.css', '.wasm', '.svg', '.webmanifest', '.json']);

async function* files(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.isFile()) yield path;
  }
}

let before = 0;
let after = 0;
for await (const path of files(dist)) {
  // The release files are written (and signed) after this step.
  if (!KINDS.has(extname(path)) || basename(path).startsWith('kith-release.')) continue;
  const bytes = await readFile(path);
  const br = brotliCompressSync(bytes, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
    },
  });
  const gz = gzipSync(bytes, { level: constants.Z_BEST_COMPRESSION });
  before += bytes.length;
  after += Math.min(bytes.length, br.length);
  if (br.length < bytes.length) await writeFile(`${path}.br`, br);
  if (gz.length < bytes.length) await writeFile(`${path}.gz`, gz);
}
console.log(`compressed: ${before} bytes of text and wasm, ${after} with brotli`);
