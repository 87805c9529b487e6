//! The broker's one error type. `web` maps each variant to an HTTP status in
//! one place.

use crate::store::StoreError;

/// Why an admin or broker operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Input Federa cannot honour; names the JSON field at fault (400).
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as the admin wrote it (`config.tokenUrl`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The thing named does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The thing would collide with one that exists (409).
    #[error("{0}")]
    Conflict(String),
    /// The realm is declared in a realm file and may not be changed here (403).
    #[error("realm {realm:?} is declared in the realm file {file}; change that file instead")]
    ReadOnly {
        /// The realm.
        realm: String,
        /// Its file.
        file: String,
    },
    /// The store failed; the cause is logged, not shown (500).
    #[error("internal error")]
    Internal(String),
}

impl BrokerError {
    /// A refusal naming a field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }
}

impl From<StoreError> for BrokerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(c) => Self::Conflict(c.to_string()),
            StoreError::NotFound(m) => Self::NotFound(m),
            StoreError::Backend(m) => Self::Internal(m),
        }
    }
}
