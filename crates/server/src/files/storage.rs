//! Record files' keys in the storage, in PocketBase's layout:
//! `<collectionId>/<recordId>/<filename>`, with thumbnails under
//! `<collectionId>/<recordId>/thumbs_<filename>/<size>_<filename>`. The storage itself is on
//! the ground floor ([`crate::state::storage`]).

/// The key of a record's file.
pub fn file_key(collection_id: &str, record_id: &str, filename: &str) -> String {
    format!("{collection_id}/{record_id}/{filename}")
}

/// The key of a thumbnail of a record's file.
pub fn thumb_key(collection_id: &str, record_id: &str, filename: &str, size: &str) -> String {
    format!("{collection_id}/{record_id}/thumbs_{filename}/{size}_{filename}")
}

/// The prefix holding every file of a record (and their thumbnails).
pub fn record_prefix(collection_id: &str, record_id: &str) -> String {
    format!("{collection_id}/{record_id}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use axum::body::Bytes;
    use futures_util::StreamExt;

    use crate::state::settings::S3;
    use crate::state::storage::{Storage, StorageError};

    #[tokio::test]
    async fn s3_storage_works_against_a_real_s3_server() {
        let Some(moto) = crate::files::tests::start_moto().await else {
            eprintln!("moto_server not available; S3 backend test skipped");
            return;
        };
        let endpoint = moto.endpoint();
        moto.create_bucket("plinth-test").await;
        let config = S3 {
            enabled: true,
            bucket: "plinth-test".into(),
            region: "us-east-1".into(),
            endpoint,
            access_key: "test".into(),
            secret: "test".into(),
            force_path_style: true,
        };
        let storage = Storage::s3(&config).unwrap();
        storage
            .put("c1/r1/a.txt", Bytes::from_static(b"hello world"))
            .await
            .unwrap();
        assert_eq!(storage.head("c1/r1/a.txt").await.unwrap().size, 11);
        let read = storage.open("c1/r1/a.txt", Some(0..5)).await.unwrap();
        let chunks: Vec<_> = read.stream.collect().await;
        let body: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect();
        assert_eq!(body, b"hello");
        storage
            .put("c1/r1/thumbs_a.txt/1x1_a.txt", Bytes::from_static(b"t"))
            .await
            .unwrap();
        assert_eq!(storage.list("c1/r1").await.unwrap().len(), 2);
        storage.delete_prefix("c1/r1").await.unwrap();
        assert!(!storage.exists("c1/r1/a.txt").await.unwrap());
        assert!(matches!(
            storage.head("c1/r1/missing").await,
            Err(StorageError::NotFound)
        ));
    }
}
