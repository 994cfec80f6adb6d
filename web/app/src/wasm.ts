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

let loading: Promise<unknown> | undefined;

/** Loads and starts the wasm module; safe to call many times. */
export function loadCore(): Promise<unknown> {
  loading ??= init();
  return loading;
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
