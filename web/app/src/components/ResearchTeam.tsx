interface Props {
  /** The fingerprint of each of the research team's keys. */
  fingerprints: string[];
}

/**
 * Who the research team is, in keys: a member can compare these with the
 * fingerprints their steward gave them, so a key slipped into the alliance
 * by someone else does not go unseen (`kith research-team list` shows the same).
 */
export function ResearchTeam({ fingerprints }: Props) {
  return (
    <details class="about">
      <summary>Who is the research team?</summary>
      {fingerprints.length === 0 ? (
        <p>This alliance has no research team key yet.</p>
      ) : (
        <>
          <p>
            The research team reads what you write, on their own computers, with their own keys. Each key has a
            fingerprint:
          </p>
          <ul class="fingerprints">
            {fingerprints.map((f) => (
              <li key={f}>
                <code>{f}</code>
              </li>
            ))}
          </ul>
          <p>If your steward gave you other fingerprints, tell them before you write.</p>
        </>
      )}
    </details>
  );
}
