// Checks an app update against the release the alliance signed
// (`core/src/release.rs`). The steward pins a release key in the membership
// log; a build's `kith-release.json` lists every file's SHA-256, and
// `kith-release.sig` is that key's signature over it. The service worker
// lists every other file with its hash (subresource integrity), so checking
// the service worker's bytes checks the whole app.
//
// What this cannot stop: a server that sends the browser one service worker
// and this check another, or a service worker that takes over by itself.
// THREAT_MODEL.md says so; serving the app from the research team's own
// origin (docs/DEPLOYMENT.md) is what removes the relay's operator from it.

import { signedReleaseHash } from './wasm';

/** What the check found: signed, not signed (with why), or unknown (offline). */
export type ReleaseVerdict = { kind: 'signed' } | { kind: 'unsigned'; why: string } | { kind: 'unknown' };

const MANIFEST = 'kith-release.json';
const SIGNATURE = 'kith-release.sig';

/** Whether the service worker the server sends at `scriptUrl` belongs to a release signed with `key`. */
export async function checkRelease(key: string, scriptUrl: string): Promise<ReleaseVerdict> {
  const script = new URL(scriptUrl, location.href);
  // The app's root: the folder the service worker sits in.
  const root = new URL('./', script);
  let manifest: Uint8Array<ArrayBuffer>;
  let signature: Uint8Array<ArrayBuffer>;
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    [manifest, signature, bytes] = await Promise.all([
      fresh(new URL(MANIFEST, root)),
      fresh(new URL(SIGNATURE, root)),
      fresh(script),
    ]);
  } catch {
    return { kind: 'unknown' };
  }
  let expected: string;
  try {
    expected = signedReleaseHash(key, manifest, signature, script.pathname.slice(root.pathname.length));
  } catch (e) {
    return { kind: 'unsigned', why: e instanceof Error ? e.message : String(e) };
  }
  const actual = hex(await crypto.subtle.digest('SHA-256', bytes));
  return actual === expected
    ? { kind: 'signed' }
    : { kind: 'unsigned', why: 'the service worker is not the one the signed release lists' };
}

/** A file as the server sends it now; a missing one reads as empty. */
async function fresh(url: URL): Promise<Uint8Array<ArrayBuffer>> {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) return new Uint8Array();
  return new Uint8Array(await response.arrayBuffer());
}

function hex(digest: ArrayBuffer): string {
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}
