//! Backup zips: writing one from a database snapshot and the data directory, and checking and
//! unpacking one that was uploaded or is about to be restored.
//!
//! The layout is PocketBase's, so each side can read the other's zips where the databases
//! allow: the database files at the root (`data.db` first, then `auxiliary.db`), then the
//! other files of the data directory (`storage/<collection>/<record>/<file>` and any other
//! root files) by their paths relative to it, in lexical order; deflate, no directory entries,
//! no wrapping folder, mode 0644, the files' modification times. The backups themselves, the
//! scratch directory and the live database files (with their `-wal`/`-shm`) are left out.
//!
//! A zip from outside is never trusted: names that would escape the directory they are
//! unpacked into, links and other special entries, duplicate names, too many entries or more
//! unpacked bytes than [`ZipLimits`] allows are refused before anything is written, and the
//! unpacked byte count is enforced while unpacking (the sizes a zip declares may lie).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

/// Top-level names of the data directory a backup never holds (PocketBase's list).
pub const EXCLUDED_TOP_LEVEL: [&str; 5] = [
    "backups",
    super::TEMP_DIR,
    ".notify",
    ".autocert_cache",
    "lost+found",
];

/// The live database files, copied from a snapshot instead of read in place.
pub const DATABASE_FILES: [&str; 2] = ["data.db", "auxiliary.db"];

/// Bounds on a zip from outside (see `docs/limits.md`, "Backups").
#[derive(Debug, Clone, Copy)]
pub struct ZipLimits {
    /// Entries in the zip (its central directory is read into memory).
    pub max_entries: usize,
    /// Bytes of all entries once unpacked.
    pub max_unpacked: u64,
}

/// One million entries; 64 GiB unpacked.
pub const DEFAULT_LIMITS: ZipLimits = ZipLimits {
    max_entries: 1_000_000,
    max_unpacked: 64 << 30,
};

/// Why a zip was refused; the text is shown to the superuser.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Not a zip at all (or one whose directory cannot be read).
    #[error("the file is not a zip archive")]
    NotZip,
    /// A zip, but not one this server may restore.
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing failed on this side (disk full, permissions).
    #[error("{0}")]
    Io(#[from] io::Error),
}

fn invalid(reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Invalid(reason.into())
}

/// Writes a backup zip to `out`: the snapshot's database files (`databases`, names in
/// `snapshot_dir`, main first) at the root, then every other regular file of `data_dir`.
/// Files that vanish while the walk runs (a record deleted meanwhile) are skipped.
pub fn pack(
    data_dir: &Path,
    snapshot_dir: &Path,
    databases: &[String],
    out: File,
) -> io::Result<()> {
    let mut zip = ZipWriter::new(BufWriter::new(out));
    for name in databases {
        add_file(&mut zip, &snapshot_dir.join(name), name)?;
    }
    let mut files = Vec::new();
    walk(data_dir, data_dir, &mut files)?;
    files.sort();
    for (relative, path) in files {
        match add_file(&mut zip, &path, &relative) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                tracing::debug!(file = %relative, "a file went away during the backup");
            }
            Err(error) => return Err(error),
        }
    }
    let writer = zip.finish().map_err(io::Error::other)?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()
}

/// Collects `(zip name, path)` for every regular file under `dir`, skipping what a backup
/// leaves out at the top level and symbolic links everywhere.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound && dir != root => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let Ok(relative) = path.strip_prefix(root) else {
            continue;
        };
        let Some(name) = relative.to_str().map(|s| s.replace('\\', "/")) else {
            tracing::warn!(path = %path.display(), "skipping a file whose name is not UTF-8");
            continue;
        };
        if dir == root && is_left_out(&name) {
            continue;
        }
        let kind = match entry.file_type() {
            Ok(kind) => kind,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            out.push((name, path));
        }
    }
    Ok(())
}

/// Whether a top-level name of the data directory stays out of a backup.
fn is_left_out(name: &str) -> bool {
    EXCLUDED_TOP_LEVEL.contains(&name)
        || DATABASE_FILES.iter().any(|db| {
            name == *db
                || name
                    .strip_prefix(db)
                    .is_some_and(|rest| rest.starts_with('-'))
        })
}

fn add_file<W: Write + Seek>(zip: &mut ZipWriter<W>, path: &Path, name: &str) -> io::Result<()> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let mut options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(1))
        .unix_permissions(0o644)
        .large_file(meta.len() >= u64::from(u32::MAX));
    if let Some(time) = meta.modified().ok().and_then(zip_time) {
        options = options.last_modified_time(time);
    }
    zip.start_file(name, options).map_err(io::Error::other)?;
    io::copy(&mut file, zip)?;
    Ok(())
}

/// A file time as a zip (DOS) time, in UTC; `None` outside the years a zip can hold.
fn zip_time(time: std::time::SystemTime) -> Option<zip::DateTime> {
    use chrono::{Datelike, Timelike};
    let time: chrono::DateTime<chrono::Utc> = time.into();
    zip::DateTime::from_date_and_time(
        u16::try_from(time.year()).ok()?,
        time.month() as u8,
        time.day() as u8,
        time.hour() as u8,
        time.minute() as u8,
        time.second() as u8,
    )
    .ok()
}

/// What a zip holds, once its directory passed the checks.
#[derive(Debug)]
pub struct Checked {
    /// Names of the entries to unpack (files only), in zip order.
    pub files: Vec<String>,
    /// The bytes they declare once unpacked.
    pub unpacked: u64,
}

/// Opens `path` as a zip and checks its directory against `limits`: every entry name is a
/// plain relative path, no entry is a link or special file, no name repeats, and `data.db`
/// sits at the root. Nothing is unpacked.
pub fn check(path: &Path, limits: ZipLimits) -> Result<Checked, ArchiveError> {
    let file = File::open(path)?;
    let mut zip = ZipArchive::new(file).map_err(|_| ArchiveError::NotZip)?;
    if zip.len() > limits.max_entries {
        return Err(invalid(format!(
            "the zip has {} entries, more than the {} allowed",
            zip.len(),
            limits.max_entries
        )));
    }
    let mut seen = HashSet::new();
    let mut files = Vec::new();
    let mut unpacked = 0u64;
    for index in 0..zip.len() {
        let entry = zip
            .by_index_raw(index)
            .map_err(|e| invalid(format!("entry {index} cannot be read: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| invalid(format!("entry {index} has an unreadable name: {e}")))?
            .into_owned();
        if entry.is_dir() {
            safe_path(name.trim_end_matches('/'))?;
            continue;
        }
        safe_path(&name)?;
        let mode = entry.unix_mode().unwrap_or(0o100644) & 0o170000;
        if entry.is_symlink() || (mode != 0 && mode != 0o100000) {
            return Err(invalid(format!(
                "the entry {name:?} is a link or a special file"
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(invalid(format!("the entry {name:?} appears twice")));
        }
        unpacked = unpacked.saturating_add(entry.size());
        if unpacked > limits.max_unpacked {
            return Err(invalid(format!(
                "the zip unpacks to more than {} bytes",
                limits.max_unpacked
            )));
        }
        if !is_skipped(&name) {
            files.push(name);
        }
    }
    if !files.iter().any(|name| name == DATABASE_FILES[0]) {
        return Err(invalid("the zip has no data.db at its root"));
    }
    Ok(Checked { files, unpacked })
}

/// Entries a restore leaves alone: whatever a zip carries under the names a backup excludes
/// (another server's backups, scratch files, live database journals).
fn is_skipped(name: &str) -> bool {
    let top = name.split('/').next().unwrap_or(name);
    EXCLUDED_TOP_LEVEL.contains(&top)
        || (!name.contains('/')
            && DATABASE_FILES.iter().any(|db| {
                name.strip_prefix(db)
                    .is_some_and(|rest| rest.starts_with('-'))
            }))
}

/// Refuses a name that is not a plain relative path: absolute, with `..` or `.` segments,
/// empty segments, backslashes, drive letters or control characters.
fn safe_path(name: &str) -> Result<(), ArchiveError> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\\')
        || name.contains(':')
        || name.chars().any(char::is_control)
        || name
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..");
    if bad {
        Err(invalid(format!(
            "the entry name {name:?} is not a plain relative path"
        )))
    } else {
        Ok(())
    }
}

/// Unpacks the entries `names` of the (checked) zip at `path` into `dest`, which must exist.
/// At most `max_unpacked` bytes in all are written, whatever the entries declare, and an entry
/// that unpacks to another size than it declares (or fails its checksum) is refused.
pub fn unpack(
    path: &Path,
    names: &[String],
    dest: &Path,
    max_unpacked: u64,
) -> Result<(), ArchiveError> {
    let file = File::open(path)?;
    let mut zip = ZipArchive::new(file).map_err(|_| ArchiveError::NotZip)?;
    let mut budget = max_unpacked;
    for name in names {
        safe_path(name)?;
        let mut entry = zip
            .by_name(name)
            .map_err(|e| invalid(format!("the entry {name:?} cannot be read: {e}")))?;
        let declared = entry.size();
        let target = dest.join(name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)?;
        let allowed = declared.min(budget);
        let written = io::copy(&mut (&mut entry).take(allowed + 1), &mut out).map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData || e.kind() == io::ErrorKind::Other {
                invalid(format!("the entry {name:?} is damaged: {e}"))
            } else {
                ArchiveError::Io(e)
            }
        })?;
        if written > declared {
            return Err(invalid(format!(
                "the entry {name:?} unpacks to more bytes than it declares"
            )));
        }
        if written > budget {
            return Err(invalid(format!(
                "the zip unpacks to more than {max_unpacked} bytes"
            )));
        }
        if written < declared {
            return Err(invalid(format!("the entry {name:?} is truncated")));
        }
        budget -= written;
        out.sync_all()?;
    }
    Ok(())
}

/// Whether the first bytes look like a zip (a local file header, or the end record of an
/// empty zip), as PocketBase sniffs an upload's type.
pub fn looks_like_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06")
}
