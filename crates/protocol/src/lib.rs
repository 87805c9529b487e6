//! Federa's protocol core: typed OAuth 2.0 and OpenID Connect values and the
//! rules that govern them. Nothing here performs I/O, reads the clock or makes
//! random numbers; callers pass `now` where time matters and random bytes
//! where secrets are made.

pub mod client_assertion;
pub mod discovery;
pub mod error;
pub mod id_token;
pub mod jwt;
pub mod logout_token;
pub mod pem_key;
pub mod pkce;
pub mod secret;
pub mod values;

pub use error::{OAuthError, OAuthErrorCode};
pub use id_token::{IdTokenError, VerifiedIdToken};
pub use jwt::{JwtError, TokenSigner};
pub use secret::Secret;
pub use values::{ClientAuthMethod, GrantType, MapperSyncMode, ParseValueError, PkceMethod, SyncMode};
