// The invite travels in the URL fragment (#join=kith2...), which browsers
// never send to a server. Once the device has joined it is removed from the
// address bar and from history.

const MARKER = '#join=';

/** The invite link in the address bar, if there is one. */
export function inviteFromUrl(): string | undefined {
  const hash = window.location.hash;
  if (!hash.startsWith(MARKER) || hash.length <= MARKER.length) return undefined;
  return window.location.href;
}

/** Takes the invite out of the address bar and this history entry. */
export function forgetInviteInUrl(): void {
  if (!window.location.hash) return;
  const url = window.location.pathname + window.location.search;
  window.history.replaceState(null, '', url);
}
