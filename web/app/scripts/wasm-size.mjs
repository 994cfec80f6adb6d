// The size of the wasm core as built, for the app's "Getting ready… 62%":
// a browser counts the bytes it has decoded, while Content-Length (when
// there is one) counts the compressed bytes on the wire.

import { statSync } from 'node:fs';

export function wasmBytes() {
  try {
    return statSync(new URL('../src/wasm/pkg/kith_wasm_bg.wasm', import.meta.url)).size;
  } catch {
    return 0;
  }
}
