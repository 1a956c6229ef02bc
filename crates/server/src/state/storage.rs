//! Where uploaded files live: one [`Storage`] type over `object_store`, so the local data
//! directory and S3-compatible buckets are used through the same calls. The keys' layout
//! (PocketBase's) is the `files` feature's.
//!
//! Several nodes: a local directory is single-node only (another node does not see its
//! files); nodes sharing one database must share an S3 bucket (the `s3` settings).

use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use axum::body::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload};

use super::settings::S3;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("file not found")]
    NotFound,
    #[error("storage: {0}")]
    Backend(#[from] object_store::Error),
    #[error("storage setup: {0}")]
    Setup(String),
}

fn classify(error: object_store::Error) -> StorageError {
    match error {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        other => StorageError::Backend(other),
    }
}

/// A file's metadata.
#[derive(Debug, Clone)]
pub struct FileMeta {
    pub size: u64,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// An opened file: its metadata, the byte range being sent, and the bytes as a stream (a
/// large file is never held whole in memory).
pub struct FileRead {
    pub meta: FileMeta,
    pub range: Range<u64>,
    pub stream: BoxStream<'static, Result<Bytes, StorageError>>,
}

/// A file store, cheap to clone.
#[derive(Clone, Debug)]
pub struct Storage {
    inner: Arc<dyn ObjectStore>,
}

impl Storage {
    /// Files in a directory of the local disk (created if missing).
    pub fn local(dir: &FsPath) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::Setup(e.to_string()))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)?
            .with_automatic_cleanup(true);
        Ok(Storage {
            inner: Arc::new(fs),
        })
    }

    /// Files in memory only (tests, and servers started without a data directory).
    pub fn memory() -> Self {
        Storage {
            inner: Arc::new(object_store::memory::InMemory::new()),
        }
    }

    /// An S3-compatible bucket, configured as PocketBase's `s3` settings describe it.
    pub fn s3(config: &S3) -> Result<Self, StorageError> {
        let mut builder = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key)
            .with_secret_access_key(&config.secret)
            .with_virtual_hosted_style_request(!config.force_path_style);
        if !config.endpoint.is_empty() {
            builder = builder
                .with_endpoint(&config.endpoint)
                .with_allow_http(config.endpoint.starts_with("http://"));
        }
        let store = builder.build()?;
        Ok(Storage {
            inner: Arc::new(store),
        })
    }

    fn path(key: &str) -> Result<Path, StorageError> {
        // Keys are built from ids and sanitized names; anything that does not parse as a
        // plain relative path (`..`, empty segments) is treated as missing.
        Path::parse(key).map_err(|_| StorageError::NotFound)
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        let path = Self::path(key)?;
        self.inner
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(classify)?;
        Ok(())
    }

    pub async fn head(&self, key: &str) -> Result<FileMeta, StorageError> {
        let path = Self::path(key)?;
        let meta = self.inner.head(&path).await.map_err(classify)?;
        Ok(FileMeta {
            size: meta.size,
            last_modified: meta.last_modified,
        })
    }

    pub async fn exists(&self, key: &str) -> Result<bool, StorageError> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(StorageError::NotFound) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// The whole file in memory (thumbnail sources, small files).
    pub async fn read_all(&self, key: &str) -> Result<Bytes, StorageError> {
        let path = Self::path(key)?;
        let result = self.inner.get(&path).await.map_err(classify)?;
        result.bytes().await.map_err(classify)
    }

    /// Opens `key`, or the `range` of it, as a stream.
    pub async fn open(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<FileRead, StorageError> {
        let path = Self::path(key)?;
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = self
            .inner
            .get_opts(&path, options)
            .await
            .map_err(classify)?;
        let meta = FileMeta {
            size: result.meta.size,
            last_modified: result.meta.last_modified,
        };
        let range = result.range.clone();
        let stream = result
            .into_stream()
            .map(|chunk| chunk.map_err(classify))
            .boxed();
        Ok(FileRead {
            meta,
            range,
            stream,
        })
    }

    /// Removes one file; a missing file is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = Self::path(key)?;
        match self.inner.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(other) => Err(StorageError::Backend(other)),
        }
    }

    /// Every key under `prefix` (a "directory"), recursively.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let path = Self::path(prefix)?;
        let mut stream = self.inner.list(Some(&path));
        let mut keys = Vec::new();
        while let Some(meta) = stream.next().await {
            keys.push(meta.map_err(classify)?.location.to_string());
        }
        Ok(keys)
    }

    /// Every key under `prefix` with its metadata.
    pub async fn list_with_meta(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, FileMeta)>, StorageError> {
        let path = if prefix.is_empty() {
            None
        } else {
            Some(Self::path(prefix)?)
        };
        let mut stream = self.inner.list(path.as_ref());
        let mut out = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(classify)?;
            out.push((
                meta.location.to_string(),
                FileMeta {
                    size: meta.size,
                    last_modified: meta.last_modified,
                },
            ));
        }
        Ok(out)
    }

    /// Stores the local file `source` under `key`, streamed in parts (backups can be larger
    /// than memory); nothing is visible under `key` until the upload completes.
    pub async fn put_file(&self, key: &str, source: &FsPath) -> Result<(), StorageError> {
        use tokio::io::AsyncReadExt as _;
        let path = Self::path(key)?;
        let upload = self.inner.put_multipart(&path).await.map_err(classify)?;
        let mut writer = object_store::WriteMultipart::new(upload);
        let mut file = tokio::fs::File::open(source)
            .await
            .map_err(|e| StorageError::Setup(e.to_string()))?;
        let mut buffer = vec![0u8; 8 << 20];
        loop {
            let n = file
                .read(&mut buffer)
                .await
                .map_err(|e| StorageError::Setup(e.to_string()))?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(4).await.map_err(classify)?;
            writer.write(&buffer[..n]);
        }
        writer.finish().await.map_err(classify)?;
        Ok(())
    }

    /// Copies `key` into the local file `dest` (created), streamed.
    pub async fn get_file(&self, key: &str, dest: &FsPath) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt as _;
        let read = self.open(key, None).await?;
        let mut stream = read.stream;
        let mut out = tokio::fs::File::create(dest)
            .await
            .map_err(|e| StorageError::Setup(e.to_string()))?;
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?)
                .await
                .map_err(|e| StorageError::Setup(e.to_string()))?;
        }
        out.flush()
            .await
            .map_err(|e| StorageError::Setup(e.to_string()))?;
        Ok(())
    }

    /// Removes everything under `prefix`.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), StorageError> {
        for key in self.list(prefix).await? {
            self.delete(&key).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_storage_round_trips_ranges_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(&dir.path().join("storage")).unwrap();
        storage
            .put("c1/r1/a.txt", Bytes::from_static(b"hello world"))
            .await
            .unwrap();
        assert!(dir.path().join("storage/c1/r1/a.txt").is_file());
        assert_eq!(
            storage.read_all("c1/r1/a.txt").await.unwrap(),
            "hello world"
        );
        let read = storage.open("c1/r1/a.txt", Some(6..11)).await.unwrap();
        assert_eq!(read.meta.size, 11);
        let chunks: Vec<_> = read.stream.collect().await;
        let body: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        assert_eq!(body, b"world");
        storage
            .put("c1/r1/thumbs_a.txt/1x1_a.txt", Bytes::from_static(b"t"))
            .await
            .unwrap();
        assert_eq!(storage.list("c1/r1").await.unwrap().len(), 2);
        storage.delete_prefix("c1/r1").await.unwrap();
        assert!(!storage.exists("c1/r1/a.txt").await.unwrap());
        assert!(matches!(
            storage.head("c1/../x").await,
            Err(StorageError::NotFound)
        ));
        storage.delete("c1/r1/missing").await.unwrap();
    }
}
