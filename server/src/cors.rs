//! Cross-origin requests from an app served apart from the relay.
//!
//! By default the relay serves the app itself, and browsers send the app's
//! requests from the relay's own origin. A deployment that serves the app
//! from a static origin the research team controls (so that whoever runs
//! the relay cannot change the app's code; see `docs/THREAT_MODEL.md`)
//! names that origin here, and the relay answers those browsers' requests
//! to its API, and no other origin's.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use serde::Deserialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

use kith_core::api::{HEADER_DEVICE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIME};

/// Web origins (`https://app.example.org`) that serve the Kith app.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AppOrigins(Vec<HeaderValue>);

impl AppOrigins {
    /// Whether none are named.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The layer that answers their browsers (none when no origin is named).
    pub fn layer(&self) -> Option<CorsLayer> {
        if self.0.is_empty() {
            return None;
        }
        let headers = [
            HEADER_DEVICE,
            HEADER_TIME,
            HEADER_NONCE,
            HEADER_SIGNATURE,
            header::CONTENT_TYPE.as_str(),
        ]
        .map(HeaderName::from_static);
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.0.clone()))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers(headers)
                // A phone on a slow link asks once an hour, not per request.
                .max_age(Duration::from_secs(3600)),
        )
    }
}

impl FromStr for AppOrigins {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(origin)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl TryFrom<String> for AppOrigins {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Debug for AppOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|o| o.to_str().unwrap_or("?")))
            .finish()
    }
}

/// One origin: a scheme, a host and perhaps a port; nothing after.
fn origin(text: &str) -> Result<HeaderValue, String> {
    let bad = || {
        format!(
            "'{text}' is not a web origin; give the scheme, host and port only, like https://app.example.org"
        )
    };
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(bad)?;
    let host_ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if !host_ok {
        return Err(bad());
    }
    HeaderValue::from_str(text).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_and_listed() {
        let two: AppOrigins = "https://app.example.org, http://127.0.0.1:5173"
            .parse()
            .unwrap();
        assert_eq!(
            format!("{two:?}"),
            r#"["https://app.example.org", "http://127.0.0.1:5173"]"#
        );
        for wrong in [
            "app.example.org",
            "https://app.example.org/",
            "https://app.example.org/path",
            "ftp://app.example.org",
            "https://",
            "https://app example.org",
        ] {
            let said = wrong.parse::<AppOrigins>().unwrap_err();
            assert!(said.contains("is not a web origin"), "{wrong}: {said}");
        }
        assert!("".parse::<AppOrigins>().unwrap().is_empty());
    }
}
