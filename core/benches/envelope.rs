//! What PADMÉ padding costs a sealed envelope, measured against the unpadded
//! format in the same run: seal + open time and bytes for a few body sizes,
//! and the size overhead over every length up to 64 KiB.
//!
//! `cargo bench -p kith-core --bench envelope`. No framework: a warm-up, then
//! the median of interleaved samples (unpadded, padded, unpadded, ...), so both
//! see the same load on a shared machine. Prints Markdown tables.

use std::hint::black_box;
use std::time::{Duration, Instant};

use kith_core::envelope::{
    BLOB_LABEL, Opened, open, open_unpadded, padded_len, seal, seal_unpadded,
};
use kith_core::{AgeIdentity, DeviceKeys, Recipient};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const SAMPLES: usize = 15;
const SAMPLE_TIME: Duration = Duration::from_millis(40);
const WARM_UP: Duration = Duration::from_millis(300);

fn main() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let author = DeviceKeys::generate(&mut rng);
    let reader = AgeIdentity::generate(&mut rng);
    let recipient = reader.recipient();
    let env = Env {
        author: &author,
        reader: &reader,
        recipients: &[&recipient],
    };

    round_trips(&env);
    spread(&env);
}

struct Env<'a> {
    author: &'a DeviceKeys,
    reader: &'a AgeIdentity,
    recipients: &'a [&'a Recipient],
}

impl Env<'_> {
    fn seal(&self, body: &str, padded: bool) -> Vec<u8> {
        if padded {
            seal(BLOB_LABEL, &body, self.author, self.recipients)
        } else {
            seal_unpadded(BLOB_LABEL, &body, self.author, self.recipients)
        }
        .expect("seals")
        .0
    }

    fn open(&self, sealed: &[u8], padded: bool) -> String {
        let opened: Opened<String> = if padded {
            open(BLOB_LABEL, sealed, &[self.reader])
        } else {
            open_unpadded(BLOB_LABEL, sealed, &[self.reader])
        }
        .expect("opens");
        opened.body
    }

    fn round_trip(&self, body: &str, padded: bool) {
        let sealed = self.seal(black_box(body), padded);
        let opened = self.open(black_box(&sealed), padded);
        assert_eq!(opened.len(), body.len());
    }
}

/// Seal + open time and sizes, padded against unpadded, for a few body sizes.
fn round_trips(env: &Env<'_>) {
    println!("## Seal + open, padded against unpadded\n");
    println!(
        "{}",
        concat!(
            "| body | plaintext | padded to | age payload unpadded | padded ",
            "| age file unpadded (mean) | padded | bytes ratio ",
            "| seal+open unpadded | padded | time ratio |",
        )
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for size in [50usize, 500, 5_000, 65_536] {
        let body = "a".repeat(size);
        let plain = plaintext_len(env, &body);
        let [unpadded_time, padded_time] = median_times(|padded| env.round_trip(&body, padded));
        let sizes = |padded: bool| {
            let files: Vec<Vec<u8>> = (0..64).map(|_| env.seal(&body, padded)).collect();
            let payload = payload_len(&files[0]);
            assert!(files.iter().all(|f| payload_len(f) == payload));
            let mean = files.iter().map(Vec::len).sum::<usize>() as f64 / files.len() as f64;
            (payload, mean)
        };
        let (unpadded_payload, unpadded_file) = sizes(false);
        let (padded_payload, padded_file) = sizes(true);
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {} | {} | {:.2} |",
            bytes(size),
            plain,
            padded_len(plain),
            unpadded_payload,
            padded_payload,
            unpadded_file,
            padded_file,
            padded_file / unpadded_file,
            micros(unpadded_time),
            micros(padded_time),
            padded_time / unpadded_time,
        );
    }
    println!();
}

/// The size overhead over a spread of lengths: exactly over every plaintext
/// length 1..=65536, and as sealed age files over body lengths in the same
/// range (every 97th, to keep the run short).
fn spread(env: &Env<'_>) {
    const MAX: usize = 65_536;
    println!("## Size overhead over lengths 1..=65536\n");

    let (mut sum_len, mut sum_padded, mut sum_ratio, mut max_ratio_above_min) =
        (0usize, 0usize, 0f64, 0f64);
    let mut sizes = std::collections::BTreeSet::new();
    for len in 1..=MAX {
        let padded = padded_len(len);
        sizes.insert(padded);
        sum_len += len;
        sum_padded += padded;
        sum_ratio += padded as f64 / len as f64;
        if len > padded_len(0) {
            max_ratio_above_min = f64::max(max_ratio_above_min, padded as f64 / len as f64);
        }
    }
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| plaintext: total padded / total unpadded, every length | {:.4} |",
        sum_padded as f64 / sum_len as f64
    );
    println!(
        "| plaintext: mean of padded / unpadded per length | {:.4} |",
        sum_ratio / MAX as f64
    );
    println!(
        "| plaintext: worst padded / unpadded above the {} B minimum | {:.4} |",
        padded_len(0),
        max_ratio_above_min
    );
    println!(
        "| plaintext: distinct sizes for the {MAX} lengths | {} |",
        sizes.len()
    );

    let (mut files, mut payloads, mut file_ratio, mut count) = ([0usize; 2], [0usize; 2], 0f64, 0);
    let started = Instant::now();
    for size in (1..=MAX).step_by(97) {
        let body = "b".repeat(size);
        let [unpadded, padded] = [false, true].map(|p| env.seal(&body, p));
        for (i, file) in [&unpadded, &padded].into_iter().enumerate() {
            files[i] += file.len();
            payloads[i] += payload_len(file);
        }
        file_ratio += padded.len() as f64 / unpadded.len() as f64;
        count += 1;
    }
    println!(
        "| age files, {count} body lengths: total padded / total unpadded | {:.4} |",
        files[1] as f64 / files[0] as f64
    );
    println!(
        "| age files: mean of padded / unpadded per length | {:.4} |",
        file_ratio / f64::from(count)
    );
    println!(
        "| age payloads (after the header): total padded / total unpadded | {:.4} |",
        payloads[1] as f64 / payloads[0] as f64
    );
    println!(
        "| (sealing those {} files took {:.1} s) | |",
        2 * count,
        started.elapsed().as_secs_f64()
    );
    println!();
}

/// The envelope plaintext length of `body`, unpadded: recovered from the
/// unpadded age payload (16-byte nonce, then a 16-byte tag per 64 KiB chunk).
fn plaintext_len(env: &Env<'_>, body: &str) -> usize {
    let payload = payload_len(&env.seal(body, false)) - 16;
    let chunks = payload.div_ceil(64 * 1024 + 16);
    payload - 16 * chunks
}

/// Median seconds per call of `f(false)` and `f(true)`, sampled in turn.
fn median_times(mut f: impl FnMut(bool)) -> [f64; 2] {
    // Warm up both, and find how many calls fill a sample.
    let started = Instant::now();
    let mut calls = 0u32;
    while started.elapsed() < WARM_UP {
        f(false);
        f(true);
        calls += 1;
    }
    let per_call = started.elapsed() / (2 * calls);
    let iters = (SAMPLE_TIME.as_nanos() / per_call.as_nanos().max(1)).clamp(1, 100_000) as u32;

    let mut samples = [Vec::new(), Vec::new()];
    for _ in 0..SAMPLES {
        for (i, padded) in [false, true].into_iter().enumerate() {
            let t = Instant::now();
            for _ in 0..iters {
                f(padded);
            }
            samples[i].push(t.elapsed().as_secs_f64() / f64::from(iters));
        }
    }
    samples.map(|mut s| {
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    })
}

/// The length of an age file after its header (age adds a header stanza of
/// random length, so the whole file varies from one sealing to the next).
fn payload_len(age_file: &[u8]) -> usize {
    let mac_line = age_file
        .windows(5)
        .position(|w| w == b"\n--- ")
        .expect("an age header")
        + 1;
    let end = mac_line
        + age_file[mac_line..]
            .iter()
            .position(|&b| b == b'\n')
            .expect("a MAC line")
        + 1;
    age_file.len() - end
}

fn micros(seconds: f64) -> String {
    format!("{:.0} µs", seconds * 1e6)
}

fn bytes(n: usize) -> String {
    if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} B")
    }
}
