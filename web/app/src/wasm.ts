// Loads the Rust core (compiled to wasm) once, and gives its values
// TypeScript shapes. Nothing else in the app imports the generated package.

import init, { Joining, KithDevice } from './wasm/pkg/kith_wasm.js';

export { Joining, KithDevice };

/** A request the core built and signed; the app only sends it. */
export interface RelayRequest {
  method: string;
  path: string;
  headers: [string, string][];
  body: Uint8Array<ArrayBuffer>;
}

/** What the core asks the app to store, in order, in one transaction. */
export type StoreOp =
  | { kind: 'blob'; id: string; bytes: Uint8Array }
  | { kind: 'state'; bytes: Uint8Array }
  | { kind: 'replica'; bytes: Uint8Array }
  | { kind: 'delete'; id: string };

export interface Contribution {
  id: string;
  author: string;
  text: string;
  createdAt: string;
  /** Only the research team (and the writer's own devices) may read it. */
  researchOnly: boolean;
  /** This member wrote it: they may edit or delete it. */
  mine: boolean;
  /**
   * A reflection; a question a facilitator or steward put to the group; an
   * answer to one (`prompt` names it); or an item on the cohort's agenda.
   */
  kind: 'reflection' | 'prompt' | 'response' | 'agenda';
  /** For an answer, the id of the question it answers. */
  prompt: string | null;
}

export interface Profile {
  allianceId: string;
  allianceName: string;
  pseudonym: string;
  role: string;
  deviceId: string;
  relay: string;
  /** The member's cohort's name, or null (researchers have none). */
  cohort: string | null;
}

export interface SyncReport {
  sent: number;
  received: number;
  rejected: string[];
  missing: string[];
}

export interface SyncStep {
  ops: StoreOp[];
  finished?: SyncReport;
}

let loading: Promise<unknown> | undefined;

/** Loads and starts the wasm module; safe to call many times. */
export function loadCore(): Promise<unknown> {
  loading ??= init();
  return loading;
}

// Typed views over the generated bindings, whose return types are `any`.

export function nextRequest(device: KithDevice): RelayRequest | undefined {
  return device.syncNext() as RelayRequest | undefined;
}

export function receive(device: KithDevice, status: number, body: Uint8Array): SyncStep {
  return device.syncReceive(status, body) as SyncStep;
}

/** A freshly signed request for the relay's live updates (server-sent events). */
export function eventsRequest(device: KithDevice): RelayRequest {
  return device.eventsRequest() as RelayRequest;
}

/** A freshly signed long poll: answered when something new arrives, or empty after `waitSecs`. */
export function waitRequest(device: KithDevice, waitSecs: number): RelayRequest {
  return device.waitRequest(waitSecs) as RelayRequest;
}

/** Who may read a reflection. */
export type Audience = 'cohort' | 'research';

export function contribute(
  device: KithDevice,
  text: string,
  audience: Audience,
): { id: string; ops: StoreOp[] } {
  return device.contribute(text, audience === 'research') as { id: string; ops: StoreOp[] };
}

/** Answers a question put to the group; returns what to store. */
export function respond(
  device: KithDevice,
  promptId: string,
  text: string,
  audience: Audience,
): { id: string; ops: StoreOp[] } {
  return device.respond(promptId, text, audience === 'research') as { id: string; ops: StoreOp[] };
}

/** Changes the text of one of the member's own reflections; returns what to store. */
export function editReflection(device: KithDevice, id: string, text: string): StoreOp[] {
  return device.edit(id, text) as StoreOp[];
}

/** Deletes one of the member's own reflections; returns what to store. */
export function deleteReflection(device: KithDevice, id: string): StoreOp[] {
  return device.delete(id) as StoreOp[];
}

export function contributions(device: KithDevice): Contribution[] {
  return device.contributions() as Contribution[];
}

export function profile(device: KithDevice): Profile {
  return device.profile() as Profile;
}

export function joinNext(joining: Joining): RelayRequest | undefined {
  return joining.nextRequest() as RelayRequest | undefined;
}

export function finishJoin(joining: Joining): { device: KithDevice; ops: StoreOp[] } {
  return joining.finish() as { device: KithDevice; ops: StoreOp[] };
}
