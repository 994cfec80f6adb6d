//! Invite links as QR codes in the terminal: a phone's camera reads the
//! link off the screen, so it need not travel by chat or e-mail, where
//! copies stay in backups and logs.

use anyhow::{Context, Result};
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

/// `text` as a QR code drawn with half-block characters (two rows of
/// modules to a line), dark on light, with the quiet zone scanners need.
pub fn terminal(text: &str) -> Result<String> {
    let code = QrCode::new(text.as_bytes()).context("the link is too long for a QR code")?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}
