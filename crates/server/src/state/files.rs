//! Record files' pieces of state: the storages (local, and S3 as the settings configure it),
//! thumbnail generation's shared state, and the collections Plinth keeps files for. Uploads,
//! downloads, thumbnails and the orphan sweep are the `files` feature's.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use domain::Schema;

use super::settings::S3;
use super::storage::{Storage, StorageError};
use super::thumb_jobs::ThumbJobs;

/// The storages a server may use: the local one (fixed at boot) and the S3 one built from the
/// current settings, rebuilt whenever they change.
///
/// Several nodes: local storage is single-node only; nodes sharing a database must keep files
/// in S3 (then every node builds the same storage from the shared settings, once its settings
/// cache has the change). The thumbnail jobs are per node. The owned-collections list is kept
/// in `_params` but merged from this node's copy: two nodes adding collections at once can
/// overwrite each other's addition, which leaves that collection's orphans unswept (files kept,
/// never lost) until the node that owns the addition writes the list again.
pub struct FileStorages {
    local: Storage,
    s3: Mutex<Option<(S3, Storage)>>,
    /// Thumbnail generation: its concurrency, memory budget and remembered refusals.
    pub thumbs: ThumbJobs,
    /// The collections Plinth keeps files for (what the orphan sweep may touch).
    pub owned: tokio::sync::Mutex<OwnedCollections>,
}

impl FileStorages {
    /// Local storage in `dir`, or in memory when there is no data directory (tests).
    pub fn new(dir: Option<PathBuf>) -> Result<Self, StorageError> {
        match dir {
            Some(dir) => Ok(FileStorages {
                local: Storage::local(&dir)?,
                s3: Mutex::new(None),
                thumbs: ThumbJobs::default(),
                owned: tokio::sync::Mutex::default(),
            }),
            None => Ok(Self::in_memory()),
        }
    }

    /// Files in memory only.
    pub fn in_memory() -> Self {
        FileStorages {
            local: Storage::memory(),
            s3: Mutex::new(None),
            thumbs: ThumbJobs::default(),
            owned: tokio::sync::Mutex::default(),
        }
    }

    pub fn local(&self) -> &Storage {
        &self.local
    }

    /// The S3 storage for `config`, reusing the client while the settings stay the same.
    pub fn s3(&self, config: &S3) -> Result<Storage, StorageError> {
        let mut slot = self.s3.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((cached, storage)) = slot.as_ref()
            && cached == config
        {
            return Ok(storage.clone());
        }
        let storage = Storage::s3(config)?;
        *slot = Some((config.clone(), storage.clone()));
        Ok(storage)
    }
}

/// The collections Plinth keeps files for (what the orphan sweep may touch), as far as this
/// node knows them; kept up to date by `files::cleanup::remember_collections`.
///
/// What the server knows of the owned collection ids: the durable list once loaded, and the
/// schema snapshot last merged into it (so unchanged schemas cost a pointer comparison).
#[derive(Default)]
pub struct OwnedCollections {
    /// The durable list, once loaded.
    pub ids: Option<BTreeSet<String>>,
    /// The schema snapshot last merged into it.
    pub merged: Option<Arc<Schema>>,
}
