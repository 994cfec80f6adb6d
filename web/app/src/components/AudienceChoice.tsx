import type { Audience } from '../wasm';

interface Props {
  /** Names the radio group (one per form on the page). */
  name: string;
  value: Audience;
  onChange: (audience: Audience) => void;
  /** Whether someone who joins the group later reads it (unknown: say nothing). */
  newcomersRead?: boolean;
}

/** Who can read what the member writes: the research team only, or their group too. */
export function AudienceChoice({ name, value, onChange, newcomersRead }: Props) {
  return (
    <fieldset class="choice">
      <legend class="label">Who can read it?</legend>
      <label class="option">
        <input type="radio" name={name} value="research" checked={value === 'research'} onChange={() => onChange('research')} />
        Only the research team
      </label>
      <label class="option">
        <input
          type="radio"
          name={name}
          value="cohort"
          checked={value === 'cohort'}
          onChange={() => onChange('cohort')}
          aria-describedby={newcomersRead !== undefined && value === 'cohort' ? `${name}-newcomers` : undefined}
        />
        My group and the research team
      </label>
      {newcomersRead !== undefined && value === 'cohort' && (
        <p class="hint" id={`${name}-newcomers`}>
          {newcomersRead
            ? 'People invited to your group later will read it too.'
            : 'People invited to your group later will not read it.'}
        </p>
      )}
    </fieldset>
  );
}
