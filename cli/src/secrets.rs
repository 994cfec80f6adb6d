//! Secrets given to a command (invite links, device codes): read from
//! standard input (`-`) or a file (`@PATH`), so they appear neither in the
//! process list nor in shell history. Given on the command line itself they
//! still work, with a warning.

use std::io::BufRead;

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

/// The secret `value` stands for; `flag` names it in messages.
pub fn read(value: &str, flag: &str) -> Result<Zeroizing<String>> {
    let text = if value == "-" {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .with_context(|| format!("could not read {flag} from standard input"))?;
        line
    } else if let Some(path) = value.strip_prefix('@') {
        Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("could not read {flag} from the file {path}"))?,
        )
    } else {
        eprintln!(
            "kith: warning: {flag} given on the command line can be seen by other programs on \
             this computer and stays in your shell history; next time use `{flag} -` and paste it, \
             or `{flag} @FILE`"
        );
        Zeroizing::new(value.to_owned())
    };
    let trimmed = Zeroizing::new(text.trim().to_owned());
    if trimmed.is_empty() {
        bail!("{flag} is empty; paste the link you were sent (or give `{flag} @FILE`)");
    }
    Ok(trimmed)
}
