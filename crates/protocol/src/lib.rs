//! Federa's protocol core: typed OAuth 2.0 and OpenID Connect values and the
//! rules that govern them. Nothing here performs I/O or reads the clock; callers
//! pass `now` where time matters.

pub mod error;
pub mod secret;
pub mod values;

pub use error::{OAuthError, OAuthErrorCode};
pub use secret::Secret;
pub use values::{ClientAuthMethod, MapperSyncMode, ParseValueError, PkceMethod, SyncMode};
