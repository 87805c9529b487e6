//! The token endpoint's one trip. Redeeming a code takes the code (single
//! use), records its use (so that a second presentation can revoke what the
//! first produced), and reads the SSO session and the user the tokens are
//! for. Where the session store lives in the database (the embedded
//! default), `storage` does all of it in one blocking call and one
//! transaction; [`Composed`] does it with the separate stores (Redis).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{SessionStore, Store, StoreError};
use crate::repr::UserRepresentation;

/// What a stored code grant points at, read from its JSON by the broker's
/// parser (storage does not know the grant's shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRefs {
    /// The session-store key of the SSO session that issued the code.
    pub session_key: String,
    /// The user's id.
    pub user_id: String,
}

/// A code to redeem.
#[derive(Debug, Clone)]
pub struct Redemption {
    /// The realm.
    pub realm: String,
    /// The session-store key of the code.
    pub code_key: String,
    /// The key under which its use is recorded.
    pub used_key: String,
    /// The record of its use (the access token's `jti`).
    pub used_value: String,
    /// How long that record lives.
    pub used_ttl: Duration,
    /// Reads what a grant (its JSON) of a realm points at.
    pub refs: fn(realm: &str, grant: &str) -> Option<GrantRefs>,
}

/// What redeeming found.
#[derive(Debug, Default)]
pub struct Redeemed {
    /// The grant, when the code was live (it is now gone).
    pub grant: Option<String>,
    /// When the code was not live: the record of an earlier use, taken.
    pub previous_use: Option<String>,
    /// The SSO session's value, when it is still alive.
    pub session: Option<String>,
    /// The user, when they exist.
    pub user: Option<UserRepresentation>,
}

/// Redeems authorization codes.
#[async_trait]
pub trait CodeRedeemer: Send + Sync {
    /// Takes the code, records its use, and reads its session and user.
    async fn redeem_code(&self, r: Redemption) -> Result<Redeemed, StoreError>;
}

/// Redemption over the separate stores: one session-store call for the code
/// and its use, then the session and the user read at once.
pub struct Composed {
    /// The durable store (users).
    pub store: Arc<dyn Store>,
    /// The session store (codes, sessions).
    pub sessions: Arc<dyn SessionStore>,
}

#[async_trait]
impl CodeRedeemer for Composed {
    async fn redeem_code(&self, r: Redemption) -> Result<Redeemed, StoreError> {
        let Some(grant) = self.sessions.take(&r.code_key).await? else {
            let previous_use = self.sessions.take(&r.used_key).await?;
            return Ok(Redeemed { previous_use, ..Redeemed::default() });
        };
        let Some(refs) = (r.refs)(&r.realm, &grant) else {
            return Ok(Redeemed { grant: Some(grant), ..Redeemed::default() });
        };
        let (used, session, user) = tokio::join!(
            self.sessions.put(&r.used_key, &r.used_value, r.used_ttl),
            self.sessions.get(&refs.session_key),
            self.store.get_user(&r.realm, &refs.user_id),
        );
        used?;
        Ok(Redeemed { grant: Some(grant), previous_use: None, session: session?, user: user? })
    }
}
