//! Limits that keep one client from exhausting the relay: a per-device
//! request rate (token buckets, kept in this instance's memory) and an early
//! refusal of request bodies declared larger than any request may be.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use kith_core::DeviceId;
use kith_core::api;

use crate::Limits;
use kith_core::relay_rules::Refusal;

use crate::error::AppError;

/// One token bucket per device: `burst` requests at once, refilled at
/// `per_minute`. Per relay instance, in memory: N instances behind a load
/// balancer allow up to N times as much (see docs/THREAT_MODEL.md).
pub struct DeviceRate {
    burst: f64,
    per_second: f64,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    by_device: HashMap<DeviceId, Bucket>,
    /// Prune full buckets when the map grows past this.
    prune_at: usize,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before the first prune; a full bucket is the same as none,
/// so pruning forgets only devices that have been quiet long enough.
const PRUNE_FLOOR: usize = 4096;

impl DeviceRate {
    /// Buckets of `burst` requests refilled at `per_minute`; a `burst` of 0
    /// turns the limit off.
    pub fn new(burst: u32, per_minute: u32) -> Self {
        Self {
            burst: f64::from(burst),
            per_second: f64::from(per_minute) / 60.0,
            buckets: Mutex::new(Buckets {
                by_device: HashMap::new(),
                prune_at: PRUNE_FLOOR,
            }),
        }
    }

    /// Takes one request from `device`'s allowance; when it has none left,
    /// how long until it has one again.
    pub fn take(&self, device: DeviceId) -> Result<(), Duration> {
        self.take_at(device, Instant::now())
    }

    /// [`take`](Self::take) at a given instant (for tests).
    pub fn take_at(&self, device: DeviceId, now: Instant) -> Result<(), Duration> {
        if self.burst == 0.0 {
            return Ok(());
        }
        // A poisoned lock only means another request panicked mid-update;
        // the buckets are still usable numbers.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.by_device.len() >= buckets.prune_at {
            let full = |b: &Bucket| self.level(b, now) >= self.burst;
            buckets.by_device.retain(|_, b| !full(b));
            buckets.prune_at = (buckets.by_device.len() * 2).max(PRUNE_FLOOR);
        }
        let bucket = buckets.by_device.entry(device).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = self.level(bucket, now);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            return Ok(());
        }
        if self.per_second == 0.0 {
            return Err(Duration::MAX);
        }
        Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second))
    }

    /// Tokens in `bucket` at `now`.
    fn level(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }
}

/// Refuses a body declared larger than any API request may be before
/// anything parses or keeps it, signed or not: the relay neither buffers nor
/// verifies megabytes it would refuse anyway. (A body sent without a length
/// is cut off at the same size where it is read, in [`crate::auth::Signed`].)
///
/// A client that writes its whole body before reading (as most do) would see
/// only a reset connection if the relay closed it with the body unread; so a
/// body of up to [`DRAIN_BYTES`] is read and dropped first, within the body
/// timeout. A larger one, or one the client holds back until told to go on
/// (`Expect: 100-continue`), is answered at once.
pub async fn refuse_oversized_bodies(
    State(limits): State<Arc<Limits>>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(declared) = declared.filter(|n| *n > api::MAX_REQUEST_BYTES as u64) else {
        return next.run(request).await;
    };
    let waits = request.headers().contains_key(header::EXPECT);
    if !waits && declared <= DRAIN_BYTES {
        let mut body = request.into_body();
        let timeout = Duration::from_secs(limits.body_read_timeout_secs);
        let _ = tokio::time::timeout(timeout, async {
            while let Some(Ok(_)) = body.frame().await {}
        })
        .await;
    }
    let mut refusal = AppError::from(Refusal::TooLarge(api::MAX_REQUEST_BYTES)).into_response();
    refusal
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    refusal
}

/// The largest refused body still read (and dropped) so its client sees the
/// answer: twice the largest request, so an upload a little too large gets
/// a clear 413, and no more than that is spent on one.
pub const DRAIN_BYTES: u64 = 2 * api::MAX_REQUEST_BYTES as u64;

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u8) -> DeviceId {
        DeviceId([n; 32])
    }

    #[test]
    fn a_burst_then_one_per_refill_period() {
        let rate = DeviceRate::new(3, 60);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(rate.take_at(device(1), t0), Ok(()));
        }
        let wait = rate.take_at(device(1), t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        // Another device has its own allowance.
        assert_eq!(rate.take_at(device(2), t0), Ok(()));
        // Half a token refilled: still refused, and told the rest.
        let half = t0 + Duration::from_millis(500);
        assert_eq!(
            rate.take_at(device(1), half).unwrap_err(),
            Duration::from_millis(500)
        );
        let later = t0 + Duration::from_secs(1);
        assert_eq!(rate.take_at(device(1), later), Ok(()));
        assert!(rate.take_at(device(1), later).is_err());
        // A long pause refills to the burst, not beyond it.
        let much_later = later + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(rate.take_at(device(1), much_later), Ok(()));
        }
        assert!(rate.take_at(device(1), much_later).is_err());
    }

    #[test]
    fn a_burst_of_zero_turns_the_limit_off_and_no_refill_means_never() {
        let off = DeviceRate::new(0, 0);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(off.take_at(device(1), t0), Ok(()));
        }
        let once = DeviceRate::new(1, 0);
        assert_eq!(once.take_at(device(1), t0), Ok(()));
        assert_eq!(once.take_at(device(1), t0), Err(Duration::MAX));
    }

    #[test]
    fn pruning_forgets_only_full_buckets() {
        let rate = DeviceRate::new(1, 60);
        let t0 = Instant::now();
        let quiet = |i: usize| {
            let mut id = [1u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            DeviceId(id)
        };
        for i in 0..PRUNE_FLOOR - 1 {
            rate.take_at(quiet(i), t0).unwrap();
        }
        // Two seconds on, the quiet devices are full again; device 0 drains
        // its bucket, and its next request finds the map at the prune size.
        let later = t0 + Duration::from_secs(2);
        rate.take_at(device(0), later).unwrap();
        assert!(rate.take_at(device(0), later).is_err(), "still drained");
        let buckets = rate.buckets.lock().unwrap();
        assert_eq!(buckets.by_device.len(), 1, "only the drained device kept");
    }
}
