//! Who is calling: a guest, or an authenticated record of some auth collection.

use std::sync::Arc;

use crate::collection::Collection;
use crate::record::Record;

/// The caller's identity, resolved once per request from the `Authorization` header.
#[derive(Debug, Clone, Default)]
pub enum AuthContext {
    #[default]
    Guest,
    Record {
        collection: Arc<Collection>,
        /// Shared: the request's rule contexts and the store's kept auth records hold the same
        /// one, so naming the caller copies nothing.
        record: Arc<Record>,
        /// Whether the token may be refreshed (impersonation tokens may not).
        refreshable: bool,
    },
}

impl AuthContext {
    pub fn is_superuser(&self) -> bool {
        matches!(self, AuthContext::Record { collection, .. } if collection.is_superusers())
    }

    pub fn is_guest(&self) -> bool {
        matches!(self, AuthContext::Guest)
    }

    pub fn record(&self) -> Option<&Record> {
        match self {
            AuthContext::Record { record, .. } => Some(record),
            AuthContext::Guest => None,
        }
    }

    pub fn collection(&self) -> Option<&Arc<Collection>> {
        match self {
            AuthContext::Record { collection, .. } => Some(collection),
            AuthContext::Guest => None,
        }
    }
}
