// Words shown to people, in one place.

/** Turns a thrown error into a sentence. */
export function sentence(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  if (error instanceof DOMException && error.name === 'QuotaExceededError') {
    message = 'this phone is out of space; free some space, then try again';
  }
  message = message.trim();
  if (!message) return 'Something went wrong.';
  const first = message.charAt(0).toUpperCase() + message.slice(1);
  return /[.!?]$/.test(first) ? first : `${first}.`;
}

/**
 * The stable code of an error from the core (`name_taken`, `not_your_item`,
 * ...; see `Error::code` in kith-core), or undefined for other errors.
 */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function reflections(n: number): string {
  return n === 1 ? '1 reflection' : `${n} reflections`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, {
  day: 'numeric',
  month: 'short',
  year: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
});

export function when(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateFormat.format(date);
}
