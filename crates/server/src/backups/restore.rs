//! Putting a verified, unpacked backup in place of the live data, between the store's close
//! and the process's restart (called by `serve`), and the boot-time cleanup after it.
//!
//! Every top-level entry of the data directory except the backups, the scratch directory and
//! PocketBase's other kept folders is renamed into `.pb_temp_to_delete/old_pb_data_<rand>/`,
//! then every entry of the staging directory is renamed into the data directory. Renames
//! within one file system are atomic each, and a failure part way undoes the ones done, so
//! the data directory holds either the old data or the new, never a mix. The old data stays
//! in the scratch directory until the restarted server has opened the new data
//! ([`cleanup_after_boot`]).

use std::io;
use std::path::{Path, PathBuf};

use super::TEMP_DIR;

/// Top-level entries a restore leaves where they are.
const KEPT: [&str; 4] = [
    super::BACKUPS_DIR,
    TEMP_DIR,
    ".autocert_cache",
    "lost+found",
];

/// A swap that happened, with what is needed to undo it.
#[derive(Debug)]
pub struct Swap {
    data_dir: PathBuf,
    staged: PathBuf,
    old: PathBuf,
    /// Names moved from the data dir into `old`.
    moved_out: Vec<String>,
    /// Names moved from `staged` into the data dir.
    moved_in: Vec<String>,
}

/// Replaces the live data in `data_dir` with the entries of `staged` (see the module
/// comment). On failure nothing has changed.
pub fn swap_in(data_dir: &Path, staged: &Path) -> io::Result<Swap> {
    let old = data_dir.join(TEMP_DIR).join(format!(
        "old_pb_data_{}",
        crate::files::naming::random_suffix(12)
    ));
    std::fs::create_dir_all(&old)?;
    let mut swap = Swap {
        data_dir: data_dir.to_owned(),
        staged: staged.to_owned(),
        old,
        moved_out: Vec::new(),
        moved_in: Vec::new(),
    };
    match swap.run() {
        Ok(()) => Ok(swap),
        Err(error) => {
            if let Err(undo) = swap.undo() {
                tracing::error!(%undo, "undoing a failed restore failed too");
            }
            Err(error)
        }
    }
}

impl Swap {
    fn run(&mut self) -> io::Result<()> {
        for name in names(&self.data_dir)? {
            if KEPT.contains(&name.as_str()) {
                continue;
            }
            std::fs::rename(self.data_dir.join(&name), self.old.join(&name))?;
            self.moved_out.push(name);
        }
        for name in names(&self.staged)? {
            if KEPT.contains(&name.as_str()) {
                continue;
            }
            std::fs::rename(self.staged.join(&name), self.data_dir.join(&name))?;
            self.moved_in.push(name);
        }
        Ok(())
    }

    /// Puts the old data back (the restart failed, or the swap itself did).
    pub fn undo(&mut self) -> io::Result<()> {
        for name in std::mem::take(&mut self.moved_in).into_iter().rev() {
            std::fs::rename(self.data_dir.join(&name), self.staged.join(&name))?;
        }
        for name in std::mem::take(&mut self.moved_out).into_iter().rev() {
            std::fs::rename(self.old.join(&name), self.data_dir.join(&name))?;
        }
        Ok(())
    }
}

fn names(dir: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        match entry.file_name().into_string() {
            Ok(name) => out.push(name),
            Err(name) => {
                return Err(io::Error::other(format!(
                    "a file name is not UTF-8: {name:?}"
                )));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Puts the data a restore moved aside back in place, when the restored data would not open
/// (the new process could not start on it): the restored entries go to
/// `.pb_temp_to_delete/failed_restore_<rand>/` and those of the newest
/// `old_pb_data_*` come back. Returns whether there was old data to put back.
pub fn roll_back(data_dir: &Path) -> io::Result<bool> {
    let temp = data_dir.join(TEMP_DIR);
    let Ok(entries) = std::fs::read_dir(&temp) else {
        return Ok(false);
    };
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in entries {
        let entry = entry?;
        let is_old = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with("old_pb_data_"));
        if !is_old || !entry.file_type()?.is_dir() {
            continue;
        }
        let modified = entry.metadata()?.modified()?;
        if newest.as_ref().is_none_or(|(time, _)| modified > *time) {
            newest = Some((modified, entry.path()));
        }
    }
    let Some((_, old)) = newest else {
        return Ok(false);
    };
    let failed = temp.join(format!(
        "failed_restore_{}",
        crate::files::naming::random_suffix(12)
    ));
    std::fs::create_dir_all(&failed)?;
    for name in names(data_dir)? {
        if !KEPT.contains(&name.as_str()) {
            std::fs::rename(data_dir.join(&name), failed.join(&name))?;
        }
    }
    for name in names(&old)? {
        std::fs::rename(old.join(&name), data_dir.join(&name))?;
    }
    std::fs::remove_dir(&old)?;
    Ok(true)
}

/// Empties the scratch directory (old data of a finished restore, leftovers of backups a
/// crash interrupted). Called once the server has opened its data.
pub fn cleanup_after_boot(data_dir: &Path) {
    let dir = data_dir.join(TEMP_DIR);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(%error, dir = %dir.display(), "cannot empty the scratch directory")
        }
    }
}
