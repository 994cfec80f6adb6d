import type { ComponentChildren } from 'preact';

interface Props {
  title: string;
  children: ComponentChildren;
  action?: { label: string; onClick: () => void };
}

/** A screen with a heading and a few words: welcome, waiting, or a problem. */
export function Notice({ title, children, action }: Props) {
  return (
    <main class="page">
      <h1>{title}</h1>
      <p class="lead">{children}</p>
      {action && (
        <button type="button" class="button" onClick={action.onClick}>
          {action.label}
        </button>
      )}
    </main>
  );
}
