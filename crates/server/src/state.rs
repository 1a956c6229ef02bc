//! Shared application state handed to every handler.

use std::sync::Arc;

use domain::{Schema, Store};

/// Boot-time options of the HTTP layer (runtime settings live in the store).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest accepted request body, in bytes (PocketBase's default is 32 MiB).
    pub body_limit: usize,
    /// bcrypt cost for new password hashes (PocketBase writes 10; tests may lower it).
    pub bcrypt_cost: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            body_limit: 32 << 20,
            bcrypt_cost: 10,
        }
    }
}

/// What handlers share: the store and the boot config.
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: ServerConfig,
}

/// The state type axum passes around.
pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> SharedState {
        Arc::new(AppState { store, config })
    }

    /// The current schema snapshot.
    pub fn schema(&self) -> Arc<Schema> {
        self.store.schema()
    }
}
