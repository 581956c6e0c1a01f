//! The store's error type.

/// Everything that can go wrong reading or writing the store.
///
/// All of these are the node's fault (or its disk's), never a peer's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB itself failed (I/O, lock held by another process, …).
    #[error("database error: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored key or value does not have the shape this schema writes.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Which record (column family and key kind).
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The database was written by a different schema version.
    #[error(
        "database schema version {found}, this build reads version {expected}; \
         use a build that matches the data directory or start a fresh one"
    )]
    Schema {
        /// The version recorded in the database.
        found: u64,
        /// The version this build reads and writes.
        expected: u64,
    },
    /// A column family the schema needs is missing after open.
    #[error("column family `{0}` is missing")]
    MissingColumnFamily(&'static str),
}

impl StoreError {
    pub(crate) fn corrupt(what: &'static str, detail: impl Into<String>) -> Self {
        StoreError::Corrupt {
            what,
            detail: detail.into(),
        }
    }
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
