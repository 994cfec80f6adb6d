// Loads the Rust core (compiled to wasm) once. The types of what it returns
// are generated from the Rust types (`web/wasm/src/convert.rs`, by tsify into
// the package's .d.ts), so they cannot drift from what the core hands over.
// Nothing else in the app imports the generated package.

import init, {
  Joining,
  KithDevice,
  LiveUpdates,
  type LiveNext,
  type StreamEnded,
  type SyncOutcome,
  type Contribution,
  type Profile,
  type RelayRequest,
  type Report,
  type StoreOpView,
  type SyncStep,
  type Written,
  signedReleaseHash,
} from './wasm/pkg/kith_wasm.js';

export { Joining, KithDevice, LiveUpdates, signedReleaseHash };
export type { Contribution, LiveNext, Profile, RelayRequest, StreamEnded, SyncOutcome, SyncStep, Written };

/** What the core asks the app to store, in order, in one transaction. */
export type StoreOp = StoreOpView;

/** What one sync run did. */
export type SyncReport = Report;

import wasmUrl from './wasm/pkg/kith_wasm_bg.wasm?url';

/** The wasm core's size as built (vite.config.ts), for progress; 0 if unknown. */
declare const __KITH_WASM_BYTES__: number;

let loading: Promise<unknown> | undefined;
let loaded = false;
let arrived = 0;
const watchers = new Set<(fraction: number) => void>();

function report(fraction: number) {
  arrived = fraction;
  for (const watch of watchers) watch(fraction);
}

/**
 * Loads and starts the wasm module; safe to call many times. It compiles
 * while it downloads, so the screens that need no core can be used
 * meanwhile. A failed load can be tried again.
 */
export function loadCore(): Promise<unknown> {
  loading ??= init({ module_or_path: countedDownload() }).then(
    (started) => {
      loaded = true;
      report(1);
      return started;
    },
    (e: unknown) => {
      loading = undefined;
      throw e;
    },
  );
  return loading;
}

/**
 * Loads the core, trying again when the connection drops (after 1, 2, 4…
 * seconds, up to 30 between tries; 8 tries in all), and says so with
 * `onRetry`. Throws a sentence for the member if it never arrives.
 */
export async function coreWhenReady(onRetry: (message: string) => void): Promise<void> {
  for (let attempt = 1, wait = 1000; ; attempt += 1, wait = Math.min(wait * 2, 30_000)) {
    try {
      await loadCore();
      return;
    } catch {
      if (attempt === 8) {
        throw new Error('Kith could not finish downloading. Check that you are online, then try again.');
      }
      onRetry('The connection dropped. Kith will keep trying.');
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

/** Whether the core has loaded. */
export function coreLoaded(): boolean {
  return loaded;
}

/** Calls `watch` with how much of the core has arrived (0 to 1), now and as it changes; returns a stop function. */
export function watchCoreProgress(watch: (fraction: number) => void): () => void {
  watchers.add(watch);
  watch(arrived);
  return () => watchers.delete(watch);
}

/** The core's download, counted as it arrives. */
async function countedDownload(): Promise<Response> {
  const response = await fetch(wasmUrl);
  if (!response.ok || !response.body || !__KITH_WASM_BYTES__) return response;
  let received = 0;
  const counter = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      received += chunk.byteLength;
      // The last step (starting it) is not counted: 99% at most until it runs.
      report(Math.min(0.99, received / __KITH_WASM_BYTES__));
      controller.enqueue(chunk);
    },
  });
  return new Response(response.body.pipeThrough(counter), {
    headers: { 'Content-Type': 'application/wasm' },
  });
}

export function nextRequest(device: KithDevice): RelayRequest | undefined {
  return device.syncNext();
}

export function receive(device: KithDevice, status: number, body: Uint8Array): SyncStep {
  return device.syncReceive(status, body);
}

/** Whether a core error says the relay refused this device for good (it was removed). */
export function refusedForGood(error: unknown): boolean {
  return error instanceof Error && 'refusedForGood' in error && error.refusedForGood === true;
}

/** A freshly signed request for the relay's live updates (server-sent events). */
export function eventsRequest(device: KithDevice): RelayRequest {
  return device.eventsRequest();
}

/** A freshly signed long poll: answered when something new arrives, or empty after `waitSecs`. */
export function waitRequest(device: KithDevice, waitSecs: number): RelayRequest {
  return device.waitRequest(waitSecs);
}

/** Who may read a reflection. */
export type Audience = 'cohort' | 'research';

export function contribute(device: KithDevice, text: string, audience: Audience): Written {
  return device.contribute(text, audience === 'research');
}

/** Answers a question put to the group; returns what to store. */
export function respond(device: KithDevice, promptId: string, text: string, audience: Audience): Written {
  return device.respond(promptId, text, audience === 'research');
}

/** Changes the text of one of the member's own reflections; returns what to store. */
export function editReflection(device: KithDevice, id: string, text: string): StoreOp[] {
  return device.edit(id, text);
}

/** Deletes one of the member's own reflections; returns what to store. */
export function deleteReflection(device: KithDevice, id: string): StoreOp[] {
  return device.delete(id);
}

export function contributions(device: KithDevice): Contribution[] {
  return device.contributions();
}

export function profile(device: KithDevice): Profile {
  return device.profile();
}

/** The fingerprints of the research team's keys (see ResearchTeam.tsx). */
export function researchTeam(device: KithDevice): string[] {
  return device.researchTeam();
}

export function joinNext(joining: Joining): RelayRequest | undefined {
  return joining.nextRequest();
}

/** The joined device, and what to store for it (in order). */
export function finishJoin(joining: Joining): { device: KithDevice; ops: StoreOp[] } {
  const device = joining.finish();
  return { device, ops: joining.takeOps() };
}
