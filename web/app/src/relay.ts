// Sends one request the core built. The app adds nothing to it: the core
// chose the path, headers and body, and signed them.

import type { RelayRequest } from './wasm';

/** fetch() could not reach the relay: no signal, or it took too long. */
export class OfflineError extends Error {
  constructor() {
    super('offline');
    this.name = 'OfflineError';
  }
}

const TIMEOUT_MS = 30_000;

export interface RelayAnswer {
  status: number;
  body: Uint8Array;
}

export async function send(relay: string, req: RelayRequest): Promise<RelayAnswer> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  try {
    const resp = await fetch(relay.replace(/\/+$/, '') + req.path, {
      method: req.method,
      headers: req.headers,
      body: req.body.length > 0 ? req.body : undefined,
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      signal: abort.signal,
    });
    const body = new Uint8Array(await resp.arrayBuffer());
    return { status: resp.status, body };
  } catch {
    throw new OfflineError();
  } finally {
    clearTimeout(timer);
  }
}
