//! The device's data folder: `state.kith` (the device's keys and sync
//! state, mode 0600), `replica.kith` (what the device has read, sealed to
//! its own key, so opening it need not open every blob again), `blobs/`
//! (one age file per blob the replica does not hold yet), and,
//! only while a join has not finished, `joining.kith` (the joining device's
//! secret keys, mode 0600, removed once the device is in).
//! Every write goes to a temporary file, is flushed to disk, then renamed,
//! so a crash leaves either the old or the new version, never half of one.
//!
//! One `kith` command at a time works on a folder: loading takes an
//! exclusive lock on `lock` (released when the command ends, or by
//! [`DataDir::unlock`]), so two commands never overwrite each other's state
//! (`kith contribute` while `kith sync --watch` runs, say).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use kith_core::{BlobRecord, Client, StoreOp, decode_blob, encode_blob};

/// One device's data folder.
pub struct DataDir {
    root: PathBuf,
    /// The lock file, while this process holds the folder.
    held: Mutex<Option<File>>,
}

impl DataDir {
    /// The folder at `root` (not created yet).
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            held: Mutex::new(None),
        }
    }

    /// Takes the folder for this process, waiting (and saying so) while
    /// another `kith` command has it. Holding it already is fine.
    pub fn lock(&self) -> Result<()> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_some() {
            return Ok(());
        }
        fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create {}", self.root.display()))?;
        let path = self.root.join("lock");
        let file = owner_only(OpenOptions::new().write(true).create(true).truncate(false))
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                eprintln!(
                    "kith: another kith command is using {}; waiting for it to finish",
                    self.root.display()
                );
                file.lock()
                    .with_context(|| format!("cannot lock {}", path.display()))?;
            }
            // A file system without locks: go on, as before locks existed.
            Err(std::fs::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        *held = Some(file);
        Ok(())
    }

    /// Lets other commands have the folder (until the next [`Self::lock`]).
    pub fn unlock(&self) {
        // Closing the file releases the lock.
        self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    fn state_path(&self) -> PathBuf {
        self.root.join("state.kith")
    }

    fn replica_path(&self) -> PathBuf {
        self.root.join("replica.kith")
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// Whether a device already lives here.
    pub fn has_device(&self) -> bool {
        self.state_path().exists()
    }

    /// Refuses to overwrite a device.
    pub fn ensure_empty(&self) -> Result<()> {
        self.lock()?;
        if self.has_device() {
            bail!(
                "{} already holds a Kith device; use another --data-dir",
                self.root.display()
            );
        }
        Ok(())
    }

    /// Takes the folder (see [`Self::lock`]), then loads the device and
    /// every stored blob.
    pub fn load(&self) -> Result<Client> {
        self.lock()?;
        if let (false, Some(notice)) = (self.has_device(), self.removal_notice()) {
            bail!("{notice}");
        }
        if !self.has_device() {
            bail!(
                "no Kith device in {}; run `kith init` or `kith join` first",
                self.root.display()
            );
        }
        let state = fs::read(self.state_path())
            .with_context(|| format!("cannot read {}", self.state_path().display()))?;
        let replica_path = self.replica_path();
        let replica = match fs::read(&replica_path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", replica_path.display()));
            }
        };
        let (client, refused) = Client::open(&state, replica.as_deref(), self.blobs()?)?;
        if refused > 0 {
            eprintln!(
                "kith: warning: {refused} stored blob(s) failed their checks and were left out"
            );
        }
        Ok(client)
    }

    /// The secret keys of a device whose join did not finish, if any.
    pub fn pending_join(&self) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        let path = self.pending_join_path();
        if !path.exists() {
            return Ok(None);
        }
        let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Some(zeroize::Zeroizing::new(bytes)))
    }

    /// Keeps a joining device's secret keys until its join finishes, so a
    /// second try is the same device and the invite is not lost.
    pub fn keep_pending_join(&self, secret: &[u8]) -> Result<()> {
        write_atomic(&self.pending_join_path(), secret)
    }

    /// Forgets them once the device is in (its state holds them now).
    pub fn forget_pending_join(&self) -> Result<()> {
        let path = self.pending_join_path();
        if path.exists() {
            fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
        Ok(())
    }

    fn pending_join_path(&self) -> PathBuf {
        self.root.join("joining.kith")
    }

    /// Every stored blob.
    pub fn blobs(&self) -> Result<Vec<BlobRecord>> {
        let dir = self.blobs_dir();
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "blob"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let bytes = fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
                decode_blob(&bytes).with_context(|| format!("{} is damaged", p.display()))
            })
            .collect()
    }

    /// Applies store operations in order, each durably. (A deleted blob
    /// that comes back after a crash is harmless: the replica holds it.)
    pub fn apply(&self, ops: Vec<StoreOp>) -> Result<()> {
        for op in ops {
            match op {
                StoreOp::PutBlob(blob) => {
                    write_atomic(&self.blob_path(blob.id), &encode_blob(&blob))?;
                }
                StoreOp::PutState(bytes) => write_atomic(&self.state_path(), &bytes)?,
                StoreOp::PutReplica(bytes) => write_atomic(&self.replica_path(), &bytes)?,
                StoreOp::DeleteBlob(id) => match fs::remove_file(self.blob_path(id)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(e).with_context(|| {
                            format!("cannot remove {}", self.blob_path(id).display())
                        });
                    }
                },
            }
        }
        Ok(())
    }

    fn blob_path(&self, id: kith_core::BlobId) -> PathBuf {
        self.blobs_dir().join(format!("{id}.blob"))
    }

    fn removed_path(&self) -> PathBuf {
        self.root.join("removed.txt")
    }

    /// The signed log says this device was removed: deletes its keys and
    /// everything it read (the state record and the replica are overwritten
    /// first), and leaves only `notice`, for whoever opens it next.
    pub fn wipe_removed(&self, notice: &str) -> Result<()> {
        for path in [
            self.state_path(),
            self.replica_path(),
            self.pending_join_path(),
        ] {
            overwrite_and_remove(&path)?;
        }
        let blobs = self.blobs_dir();
        if blobs.exists() {
            fs::remove_dir_all(&blobs)
                .with_context(|| format!("cannot remove {}", blobs.display()))?;
        }
        write_atomic(&self.removed_path(), format!("{notice}\n").as_bytes())
    }

    /// What a wiped folder says, if this one was wiped.
    pub fn removal_notice(&self) -> Option<String> {
        fs::read_to_string(self.removed_path())
            .ok()
            .map(|t| t.trim().to_owned())
    }
}

/// Overwrites a file with zeros, then removes it. (On flash storage the old
/// blocks may survive the overwrite; the keys inside are of no use once the
/// alliance has replaced them, which a removal does.)
fn overwrite_and_remove(path: &Path) -> Result<()> {
    let len = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let zeros = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.write_all(&zeros)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot overwrite {}", path.display()))?;
    fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))
}

/// Writes `bytes` to `path` so that a crash never leaves a partial file.
/// Files are readable by their owner only.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file path has a parent folder")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    let mut file = owner_only(OpenOptions::new().write(true).create(true).truncate(true))
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Opens new files with mode 0600 on Unix.
pub fn owner_only(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600)
    }
    #[cfg(not(unix))]
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Two commands on one folder take turns: the second waits until the
    /// first lets go (each `DataDir` opens the lock file afresh, as two
    /// processes would, so they exclude each other).
    #[test]
    fn a_second_command_waits_for_the_folder() {
        let root = tempfile::tempdir().unwrap();
        let first = DataDir::new(root.path());
        first.lock().unwrap();
        let (took, taken) = mpsc::channel();
        let path = root.path().to_owned();
        let waiter = std::thread::spawn(move || {
            let second = DataDir::new(&path);
            second.lock().unwrap();
            took.send(()).unwrap();
        });
        assert!(
            taken.recv_timeout(Duration::from_millis(500)).is_err(),
            "the second took the folder while the first held it"
        );
        first.unlock();
        taken
            .recv_timeout(Duration::from_secs(30))
            .expect("the second takes the folder once the first lets go");
        waiter.join().unwrap();
    }
}
