//! Moving from PocketBase: `plinth import-pocketbase SRC [--dir DEST]` converts a PocketBase
//! 0.23+ `pb_data` into a fresh Plinth data directory, and `plinth serve` on a directory
//! PocketBase wrote converts it in place ([`convert_in_place_if_needed`]).
//!
//! In place, the original files are first packed into `backups/pb_original_<UTC>.zip` as they
//! are; the conversion is written into a scratch directory beside them and checked (row counts
//! per collection); only then does the converted `data.db` replace PocketBase's with one
//! `rename`, which is atomic. Stored files keep their place: Plinth's `storage/` layout is
//! PocketBase's (`COLLECTION_ID/RECORD_ID/FILE`). PocketBase's `auxiliary.db` (request logs)
//! is left where it is (Plinth's log store has the same table); into a new directory it is
//! copied.
//!
//! The conversion itself is `server::import`, reading PocketBase's file through
//! `store_sqlite::pocketbase` and writing through the `Store` port.

use std::fs;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Args;
use domain::collection::Collection;
use domain::record::RecordData;
use server::import::{ImportError, Options, Param, Progress, Report, Source};
use store_sqlite::pocketbase::{self, DataDirKind, PocketBaseData, PocketBaseParam};

use crate::config::GlobalArgs;

#[derive(Debug, Args)]
pub struct ImportPocketBaseArgs {
    /// The PocketBase data directory to read (its `data.db` and `storage/`); it is not changed.
    pub src: PathBuf,
}

pub async fn run(global: &GlobalArgs, args: ImportPocketBaseArgs) -> anyhow::Result<()> {
    let src = &args.src;
    let dest = &global.dir;
    if pocketbase::detect(src)? != DataDirKind::PocketBase {
        bail!(
            "{} does not hold a PocketBase 0.23+ data.db (a `_collections` table with `fields`)",
            src.display()
        );
    }
    if same_dir(src, dest) {
        convert_in_place(global).await?;
        return Ok(());
    }
    if dest.join("data.db").exists() {
        bail!(
            "{} already holds a database; import into a new directory (--dir)",
            dest.display()
        );
    }
    fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let progress = progress();
    let report = convert(global, src, dest, &*progress).await?;
    let copied = copy_storage(&src.join("storage"), &dest.join("storage"), &*progress)?;
    let logs = pocketbase::copy_logs(src, dest).context("copying the request logs")?;
    progress.finish();
    print_report(&report, Some(copied));
    if logs > 0 {
        eprintln!("copied {logs} request log entries");
    }
    Ok(())
}

/// `plinth migrate-to-postgres --db postgres://… [--dir pb_data]`: copies the SQLite data
/// Plinth wrote in `--dir` into the empty PostgreSQL database `--db` names, with a progress
/// bar, and checks every collection's row count afterwards. The SQLite files are only read;
/// files stay in `--dir/storage` (move them to S3 before a second node starts).
pub async fn migrate_to_postgres(global: &GlobalArgs) -> anyhow::Result<()> {
    if global.postgres_url()?.is_none() {
        bail!("name the PostgreSQL database to copy into with --db postgres://… (or PLINTH_DB)");
    }
    let src = &global.dir;
    let data = PocketBaseData::open_plinth(src)
        .with_context(|| format!("reading the SQLite data in {}", src.display()))?;
    let store = super::open_store(global, false).await?;
    let in_use = destination_in_use(&*store).await;
    let result = match in_use {
        Ok(None) => {
            let options = Options {
                encryption_key: global
                    .encryption_env
                    .as_deref()
                    .and_then(|name| std::env::var(name).ok()),
            };
            let progress = progress();
            let mut source = PbSource(data);
            let result = server::import::import(&mut source, &*store, &options, &*progress).await;
            progress.finish();
            result.map_err(anyhow::Error::new)
        }
        Ok(Some(what)) => Err(anyhow::anyhow!(
            "the PostgreSQL database already holds {what}: migrate into an empty database"
        )),
        Err(error) => Err(anyhow::Error::new(error)),
    };
    let closed = store.close().await;
    let report = result?;
    closed.context("closing the PostgreSQL database")?;
    print_report(&report, None);
    eprintln!(
        "The data now lives in PostgreSQL; start with `plinth serve --db=…`. Files stay in {}: enable S3-compatible storage before running more than one node.",
        src.join("storage").display()
    );
    Ok(())
}

/// What a destination store already holds that a migration would mix with, if anything.
async fn destination_in_use(
    store: &dyn domain::Store,
) -> Result<Option<String>, domain::StoreError> {
    let schema = store.schema();
    // A new database starts with the system collections and `users`.
    if let Some(collection) = schema
        .all()
        .iter()
        .find(|c| !c.system && c.id != domain::collection::USERS_ID)
    {
        return Ok(Some(format!("the collection {:?}", collection.name)));
    }
    for collection in schema.all().iter().filter(|c| !c.is_view()) {
        let page = store
            .list_records(domain::RecordQuery {
                collection: Arc::clone(collection),
                filters: Vec::new(),
                sort: Vec::new(),
                page: 1,
                per_page: 1,
                with_total: false,
            })
            .await?;
        if !page.items.is_empty() {
            return Ok(Some(format!("records in {:?}", collection.name)));
        }
    }
    Ok(None)
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `plinth serve`'s step before opening the store: a directory PocketBase wrote is backed up
/// and converted; anything else is left alone.
pub async fn convert_in_place_if_needed(global: &GlobalArgs) -> anyhow::Result<()> {
    // On PostgreSQL the data dir holds no database to convert.
    if global.postgres_url()?.is_some() {
        return Ok(());
    }
    match pocketbase::detect(&global.dir)? {
        DataDirKind::PocketBase => convert_in_place(global).await,
        DataDirKind::Empty | DataDirKind::Plinth => Ok(()),
    }
}

async fn convert_in_place(global: &GlobalArgs) -> anyhow::Result<()> {
    let dir = &global.dir;
    eprintln!(
        "{} holds a PocketBase data directory: backing it up and converting it to Plinth's format",
        dir.display()
    );
    let backup = backup_original(dir)?;
    eprintln!("original files saved in {}", backup.display());
    // The zip holds the files exactly as they were; folding a leftover WAL in changes no data
    // and keeps it from being applied to the converted file.
    pocketbase::checkpoint(dir)?;
    let scratch = dir.join(".plinth_import");
    if scratch.exists() {
        fs::remove_dir_all(&scratch)
            .with_context(|| format!("removing the leftover {}", scratch.display()))?;
    }
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let progress = progress();
    let report = match convert(global, dir, &scratch, &*progress).await {
        Ok(report) => report,
        Err(error) => {
            progress.finish();
            let _ = fs::remove_dir_all(&scratch);
            return Err(error.context(format!(
                "the PocketBase data in {} was left as it was",
                dir.display()
            )));
        }
    };
    progress.finish();
    pocketbase::checkpoint(&scratch)?;
    for suffix in ["-wal", "-shm"] {
        let stale = dir.join(format!("data.db{suffix}"));
        if stale.exists() {
            fs::remove_file(&stale).with_context(|| format!("removing {}", stale.display()))?;
        }
    }
    fs::rename(scratch.join("data.db"), dir.join("data.db"))
        .context("replacing data.db with the converted database")?;
    let _ = fs::remove_dir_all(&scratch);
    print_report(&report, None);
    Ok(())
}

/// Converts the PocketBase database in `src` into a new Plinth database in `dest`.
async fn convert(
    global: &GlobalArgs,
    src: &Path,
    dest: &Path,
    progress: &dyn Progress,
) -> anyhow::Result<Report> {
    let data = PocketBaseData::open(src)?;
    let options = Options {
        encryption_key: global
            .encryption_env
            .as_deref()
            .and_then(|name| std::env::var(name).ok()),
    };
    let mut dest_global = global.clone();
    dest_global.dir = dest.to_owned();
    let store = super::open_store(&dest_global, false).await?;
    let mut source = PbSource(data);
    let result = server::import::import(&mut source, &*store, &options, progress).await;
    let closed = store.close().await;
    drop(store);
    let report = result.map_err(|e| match e {
        ImportError::MissingKey if global.encryption_env.is_none() => anyhow::anyhow!(
            "the PocketBase settings are encrypted: pass --encryptionEnv NAME, NAME being the environment variable holding PocketBase's key"
        ),
        other => anyhow::Error::new(other),
    })?;
    closed.context("closing the converted database")?;
    Ok(report)
}

/// Reads through `store_sqlite::pocketbase`; the server's importer knows only [`Source`].
struct PbSource(PocketBaseData);

fn source_error(error: pocketbase::PocketBaseError) -> ImportError {
    ImportError::Source(error.to_string())
}

impl Source for PbSource {
    fn collections(&mut self) -> Result<Vec<Collection>, ImportError> {
        self.0.collections().map_err(source_error)
    }

    fn count(&mut self, collection: &Collection) -> Result<u64, ImportError> {
        self.0.count(collection).map_err(source_error)
    }

    fn records(
        &mut self,
        collection: &Collection,
        after: i64,
        limit: usize,
    ) -> Result<(Vec<RecordData>, i64), ImportError> {
        self.0
            .records(collection, after, limit)
            .map_err(source_error)
    }

    fn params(&mut self) -> Result<Vec<(String, Param)>, ImportError> {
        Ok(self
            .0
            .params()
            .map_err(source_error)?
            .into_iter()
            .map(|(id, value)| {
                let value = match value {
                    PocketBaseParam::Json(v) => Param::Json(v),
                    PocketBaseParam::Encrypted(c) => Param::Encrypted(c),
                    PocketBaseParam::Null => Param::Null,
                };
                (id, value)
            })
            .collect())
    }

    fn migrations(&mut self) -> Result<Vec<(String, i64)>, ImportError> {
        self.0.migrations().map_err(source_error)
    }
}

/// Packs the original PocketBase files (databases with any WAL, `storage/`, other root files;
/// not `backups/` or scratch directories) into `dir/backups/pb_original_<UTC>.zip`. Written to
/// a temporary name first, so a failure leaves no partial zip under the final name.
fn backup_original(dir: &Path) -> anyhow::Result<PathBuf> {
    let backups = dir.join("backups");
    fs::create_dir_all(&backups).with_context(|| format!("creating {}", backups.display()))?;
    let stamp = chrono_stamp();
    let path = backups.join(format!("pb_original_{stamp}.zip"));
    let partial = backups.join(format!(".pb_original_{stamp}.zip.partial"));
    let result = write_zip(dir, &partial);
    if let Err(error) = result {
        let _ = fs::remove_file(&partial);
        return Err(error.context("backing up the PocketBase data before converting it"));
    }
    fs::rename(&partial, &path).with_context(|| format!("naming {}", path.display()))?;
    Ok(path)
}

fn chrono_stamp() -> String {
    // PocketBase's backup names use UTC `yyyyMMddHHmmss`.
    domain::time::now()
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect()
}

/// Root entries never worth keeping in the backup (PocketBase's backups skip them too).
const SKIPPED: [&str; 6] = [
    "backups",
    ".pb_temp_to_delete",
    ".notify",
    ".autocert_cache",
    "lost+found",
    ".plinth_import",
];

fn write_zip(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true)
        .unix_permissions(0o644);
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files, true)?;
    // data.db first, as in PocketBase's zips.
    files.sort_by_key(|(name, _)| (name != "data.db", name.clone()));
    for (name, path) in files {
        zip.start_file(name.as_str(), options)?;
        let mut reader =
            fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
        std::io::copy(&mut reader, &mut zip)
            .with_context(|| format!("packing {}", path.display()))?;
    }
    let mut inner = zip.finish()?;
    inner.flush()?;
    inner.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

fn collect_files(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
    top: bool,
) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if top && SKIPPED.contains(&name.as_str()) {
            continue;
        }
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            collect_files(root, &path, out, false)?;
        } else if kind.is_file() {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((relative, path));
        }
    }
    Ok(())
}

/// Copies PocketBase's stored files (`COLLECTION_ID/RECORD_ID/FILE` and their `.attrs`
/// sidecars) into the new directory; thumbnails are left out (they are made again on demand).
/// `fs::copy` streams, so a file of any size costs no memory. Returns how many files were
/// copied.
fn copy_storage(src: &Path, dest: &Path, progress: &dyn Progress) -> anyhow::Result<u64> {
    if !src.is_dir() {
        return Ok(0);
    }
    let mut files = Vec::new();
    collect_files(src, src, &mut files, false)?;
    files.retain(|(name, _)| !name.split('/').any(|part| part.starts_with("thumbs_")));
    progress.phase("files", files.len() as u64);
    let mut copied = 0;
    for (name, path) in files {
        let target = dest.join(&name);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(&path, &target).with_context(|| format!("copying storage/{name}"))?;
        copied += 1;
        progress.advance(1);
    }
    Ok(copied)
}

fn print_report(report: &Report, files: Option<u64>) {
    let records: u64 = report.records.values().sum();
    let mut line = format!(
        "imported {} collections, {records} records",
        report.collections
    );
    if let Some(files) = files {
        line.push_str(&format!(", {files} files"));
    }
    if report.settings {
        line.push_str(", settings");
    }
    line.push_str(&format!(", {} migration entries", report.migrations));
    eprintln!("{line}");
    if !report.warnings.is_empty() {
        eprintln!("{} warnings (see above)", report.warnings.len());
    }
}

/// A progress bar on a terminal; plain lines otherwise (logs, CI).
fn progress() -> Box<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Box::new(Bar(Arc::new(indicatif::ProgressBar::hidden())))
    } else {
        Box::new(Lines)
    }
}

struct Bar(Arc<indicatif::ProgressBar>);

impl Progress for Bar {
    fn phase(&self, label: &str, total: u64) {
        self.0
            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        self.0.set_length(total);
        self.0.set_position(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta})")
        {
            self.0.set_style(style.progress_chars("=> "));
        }
        self.0.set_message(label.to_owned());
    }

    fn advance(&self, steps: u64) {
        self.0.inc(steps);
    }

    fn warn(&self, message: &str) {
        self.0.println(format!("warning: {message}"));
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

struct Lines;

impl Progress for Lines {
    fn phase(&self, label: &str, total: u64) {
        eprintln!("importing {label} ({total})");
    }

    fn advance(&self, _: u64) {}

    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }

    fn finish(&self) {}
}
