//! `kith release`: the key that signs the app's releases, signing a build,
//! and pinning the key in the alliance (a steward's).

use std::collections::BTreeSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use kith_core::release::{
    MANIFEST_FILE, ReleaseKey, ReleaseManifest, ReleaseSigningKey, SIGNATURE_FILE, verify_release,
};
use rand_core::OsRng;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::relay::{change, now, sync};
use crate::store::{DataDir, owner_only, write_atomic};
use crate::{Output, ReleaseCommand};

pub fn run_release(command: ReleaseCommand) -> Result<Output> {
    match command {
        ReleaseCommand::Keygen { out } => keygen(&out),
        ReleaseCommand::Sign { key, dir } => sign(&key, &dir),
        ReleaseCommand::Verify { key, dir } => verify(&key, &dir),
        ReleaseCommand::Pin { data_dir, key } => {
            let key = ReleaseKey::parse(&key)?;
            pin(&data_dir, Some(key))
        }
        ReleaseCommand::Unpin { data_dir } => pin(&data_dir, None),
        ReleaseCommand::Show { data_dir } => {
            let dir = DataDir::new(&data_dir);
            let mut client = dir.load()?;
            if let Err(e) = sync(&mut client, &dir) {
                eprintln!("kith: showing what this device last saw ({e:#})");
            }
            Ok(pinned_output(client.membership().release_key(), ""))
        }
    }
}

fn keygen(out: &Path) -> Result<Output> {
    let key = ReleaseSigningKey::generate(&mut OsRng);
    let mut file = owner_only(OpenOptions::new().write(true).create_new(true))
        .open(out)
        .with_context(|| format!("cannot create {} (it must not exist yet)", out.display()))?;
    file.write_all(key.export().as_bytes())?;
    file.sync_all()?;
    let public = key.public().to_string();
    Ok(Output::ok(
        json!({ "release_key": public }),
        format!(
            "Saved a new release signing key to {}. Keep it off the relay's machine.\n\
             Its public half, for `kith release pin --key`: {public}",
            out.display()
        ),
    ))
}

/// Signs the build in `dir`, after checking that its manifest lists
/// exactly the files there, with their hashes.
fn sign(key_file: &Path, dir: &Path) -> Result<Output> {
    let text = zeroize::Zeroizing::new(
        fs::read_to_string(key_file)
            .with_context(|| format!("cannot read the key file {}", key_file.display()))?,
    );
    let key = ReleaseSigningKey::parse(&text)?;
    let (bytes, manifest) = read_manifest(dir)?;
    check_files(dir, &manifest)?;
    write_atomic(&dir.join(SIGNATURE_FILE), key.sign(&bytes).as_bytes())?;
    Ok(Output::ok(
        json!({ "release_key": key.public().to_string(), "files": manifest.files.len() }),
        format!(
            "Signed {} files in {} with {}.\nWrote {SIGNATURE_FILE}; publish it with the build.",
            manifest.files.len(),
            dir.display(),
            key.public()
        ),
    ))
}

/// What a device checks, run on a folder: the signature, then every file.
fn verify(key: &str, dir: &Path) -> Result<Output> {
    let key = ReleaseKey::parse(key)?;
    let (bytes, _) = read_manifest(dir)?;
    let signature = fs::read(dir.join(SIGNATURE_FILE)).unwrap_or_default();
    let manifest = verify_release(&key, &bytes, &signature)?;
    check_files(dir, &manifest)?;
    Ok(Output::ok(
        json!({ "release_key": key.to_string(), "files": manifest.files.len() }),
        format!(
            "The build in {} is signed with {key}, and its {} files match.",
            dir.display(),
            manifest.files.len()
        ),
    ))
}

fn read_manifest(dir: &Path) -> Result<(Vec<u8>, ReleaseManifest)> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = fs::read(&path).with_context(|| {
        format!(
            "cannot read {}; build the app first (cargo xtask web writes it)",
            path.display()
        )
    })?;
    let manifest = ReleaseManifest::parse(&bytes)?;
    Ok((bytes, manifest))
}

/// Every file the manifest lists has its hash and size, and no other file
/// is in the folder (one it did not list would go out unchecked).
fn check_files(dir: &Path, manifest: &ReleaseManifest) -> Result<()> {
    let mut listed = BTreeSet::new();
    for file in &manifest.files {
        if file
            .path
            .split('/')
            .any(|part| part.is_empty() || part == "..")
        {
            bail!(
                "the manifest names {:?}, which is not a path inside the build",
                file.path
            );
        }
        let path = dir.join(&file.path);
        let bytes = fs::read(&path)
            .with_context(|| format!("the manifest lists {}, which is not there", file.path))?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if sha256 != file.sha256 || bytes.len() as u64 != file.bytes {
            bail!(
                "{} is not the file the manifest lists (build again, then sign)",
                file.path
            );
        }
        listed.insert(file.path.clone());
    }
    for found in files_under(dir, dir)? {
        if found != MANIFEST_FILE && found != SIGNATURE_FILE && !listed.contains(&found) {
            bail!(
                "{found} is in {} but not in its manifest (build again, then sign)",
                dir.display()
            );
        }
    }
    Ok(())
}

fn files_under(root: &Path, dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            found.extend(files_under(root, &path)?);
        } else {
            let relative = path.strip_prefix(root).context("a file under the build")?;
            let parts: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
            found.push(parts.join("/"));
        }
    }
    Ok(found)
}

fn pin(data_dir: &Path, key: Option<ReleaseKey>) -> Result<Output> {
    let dir = DataDir::new(data_dir);
    let mut client = dir.load()?;
    sync(&mut client, &dir)?;
    if client.membership().release_key() == key {
        let said = if key.is_some() {
            "That key is already pinned."
        } else {
            "No release key is pinned."
        };
        return Ok(pinned_output(key, said));
    }
    change(&mut client, &dir, |c| {
        c.pin_release_key(key, now(), &mut OsRng)
    })?;
    let said = match key {
        Some(_) => "Pinned. Members' apps will offer only updates signed with this key.",
        None => "Unpinned. Members' apps no longer check who signed an update.",
    };
    Ok(pinned_output(key, said))
}

fn pinned_output(key: Option<ReleaseKey>, said: &str) -> Output {
    let shown = key.map(|k| k.to_string());
    let mut text = said.to_owned();
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&match &shown {
        Some(k) => format!("Release key: {k}"),
        None => "No release key is pinned: members' apps take any update the server sends.".into(),
    });
    Output::ok(json!({ "release_key": shown }), text)
}
