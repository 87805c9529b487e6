//! The stored upstream tokens (`storeToken`) and their reading endpoint,
//! `GET /realms/{r}/broker/{alias}/token` (Keycloak's): the upstream's token
//! response, kept encrypted on the user's link, written at the first sign-in
//! and replaced at every later one, answered to a bearer access token whose
//! user holds the `broker` client's `read-token` role. An expired upstream
//! access token is refreshed at the upstream first when a refresh token is
//! held, and the new tokens are stored; one reader at a time refreshes (a
//! session-store lock per realm, user and provider), the others wait for
//! its result.

use std::time::{Duration, Instant};

use federa_protocol::Secret;
use serde_json::{Map, Value};

use super::bearer::BearerError;
use super::{now, Broker, RealmInfo};
use crate::model::client_roles::{BROKER_CLIENT, READ_TOKEN};

/// The field Federa adds to a stored token response: when its access token
/// expires, seconds since the epoch (from the response's `expires_in`).
const EXPIRES_AT: &str = "expires_at";

/// Why the stored tokens are not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerTokenError {
    /// The bearer token is missing or not valid (401).
    Bearer(BearerError),
    /// The token's user lacks the `broker` client role `read-token`, or the
    /// token is a client's own (403).
    Forbidden,
    /// Nothing is stored for this user and provider, or the provider does
    /// not store tokens (400).
    NotStored(String),
    /// The stored access token expired and the upstream refused or failed
    /// to refresh it (502).
    Upstream,
    /// Another request is refreshing the stored token and has not finished
    /// within [`REFRESH_WAIT`] (503, to be retried).
    Busy,
}

/// How long the refresh lock of a stored token lives at most (a reader that
/// dies holding it blocks the others no longer).
const REFRESH_LOCK_TTL: Duration = Duration::from_secs(10);
/// How long a reader waits for another's refresh of the same stored token.
pub const REFRESH_WAIT: Duration = Duration::from_secs(5);
/// How often a waiting reader looks at the stored token.
const REFRESH_POLL: Duration = Duration::from_millis(100);

/// The session-store key that one refresh of a user's stored token for a
/// provider holds.
fn refresh_lock_key(realm: &str, user: &str, alias: &str) -> String {
    format!("broker-token-refresh:{realm}:{user}:{alias}")
}

/// The JSON kept for a token response: the response as the upstream sent
/// it, with [`EXPIRES_AT`] when it says `expires_in`.
pub(super) fn to_store(tokens: &Map<String, Value>, now: i64) -> String {
    let mut stored = tokens.clone();
    if let Some(expires_in) = tokens.get("expires_in").and_then(Value::as_i64) {
        stored.insert(EXPIRES_AT.into(), Value::from(now.saturating_add(expires_in)));
    }
    Value::Object(stored).to_string()
}

/// Whether the stored access token has expired.
fn expired(stored: &Map<String, Value>, now: i64) -> bool {
    stored.get(EXPIRES_AT).and_then(Value::as_i64).is_some_and(|at| at <= now)
}

/// The answer: the stored response, its `expires_in` counted from now.
fn answer(mut stored: Map<String, Value>, now: i64) -> Value {
    if let Some(at) = stored.get(EXPIRES_AT).and_then(Value::as_i64) {
        stored.insert("expires_in".into(), Value::from((at - now).max(0)));
    }
    Value::Object(stored)
}

fn internal(e: impl std::fmt::Display) -> BrokerTokenError {
    log::error!("broker token endpoint: {e}");
    BrokerTokenError::Bearer(BearerError::Internal)
}

impl Broker {
    /// `GET /realms/{realm}/broker/{alias}/token`.
    pub async fn broker_token(
        &self,
        realm: &RealmInfo,
        alias: &str,
        bearer: Option<&str>,
    ) -> Result<Value, BrokerTokenError> {
        let claims = self
            .check_access_token(realm, bearer.ok_or(BrokerTokenError::Bearer(BearerError::Missing))?)
            .await
            .map_err(BrokerTokenError::Bearer)?;
        let user = claims.user().ok_or(BrokerTokenError::Forbidden)?.to_owned();
        let roles = self.store.user_client_roles(&realm.name, &user, BROKER_CLIENT).await.map_err(internal)?;
        if !roles.iter().any(|r| r == READ_TOKEN) {
            log::info!("realm {:?}: broker token of {alias:?} refused: the user lacks broker/read-token", realm.name);
            return Err(BrokerTokenError::Forbidden);
        }
        let idp = self
            .idp(&realm.name, alias)
            .await
            .map_err(internal)?
            .ok_or_else(|| BrokerTokenError::NotStored(format!("no identity provider {alias:?}")))?;
        if !idp.store_token {
            return Err(BrokerTokenError::NotStored(format!("identity provider {alias:?} does not store tokens")));
        }
        // An expired token is refreshed by one reader at a time (a lock in
        // the session store, so across instances): an upstream that rotates
        // refresh tokens accepts each one once. The others wait for the
        // fresh token to be stored, or hear 503 when it takes too long.
        let lock = refresh_lock_key(&realm.name, &user, alias);
        let deadline = Instant::now() + REFRESH_WAIT;
        loop {
            let stored = self.stored_token(&realm.name, &user, alias).await?;
            let now = now();
            let refresh_token = stored.get("refresh_token").and_then(Value::as_str).map(str::to_owned);
            let Some(refresh_token) = refresh_token.filter(|_| expired(&stored, now)) else {
                return Ok(answer(stored, now));
            };
            if self.sessions.put_if_absent(&lock, "1", REFRESH_LOCK_TTL).await.map_err(internal)? {
                let refreshed = self.refresh_stored(realm, &idp, &user, stored, &refresh_token).await;
                if let Err(e) = self.sessions.delete(&lock).await {
                    log::error!("realm {:?}: the refresh lock of a stored token was not released: {e}", realm.name);
                }
                return refreshed;
            }
            if Instant::now() >= deadline {
                log::info!("realm {:?}: the stored token of {alias:?} is still being refreshed", realm.name);
                return Err(BrokerTokenError::Busy);
            }
            tokio::time::sleep(REFRESH_POLL).await;
        }
    }

    /// The tokens stored on the user's link to `alias`.
    async fn stored_token(&self, realm: &str, user: &str, alias: &str) -> Result<Map<String, Value>, BrokerTokenError> {
        let sealed = self
            .store
            .link_token(realm, user, alias)
            .await
            .map_err(internal)?
            .ok_or_else(|| BrokerTokenError::NotStored(format!("no token is stored for {alias:?}")))?;
        match serde_json::from_str::<Value>(sealed.expose()) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(internal("a stored token is not a JSON object")),
        }
    }

    /// Refreshes an expired stored token at the upstream and stores the
    /// result (the caller holds the refresh lock); the answer.
    async fn refresh_stored(
        &self,
        realm: &RealmInfo,
        idp: &std::sync::Arc<crate::model::Upstream>,
        user: &str,
        mut stored: Map<String, Value>,
        refresh_token: &str,
    ) -> Result<Value, BrokerTokenError> {
        let alias = idp.alias.as_str();
        let up = self.upstreams.resolve(&self.http, idp).await.map_err(|e| {
            log::warn!("realm {:?}: stored token of {alias:?} cannot be refreshed: {e}", realm.name);
            BrokerTokenError::Upstream
        })?;
        let form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        let fresh = self.upstream_token_request(&up, realm, form).await.map_err(|e| {
            log::warn!("realm {:?}: stored token of {alias:?} cannot be refreshed: {e}", realm.name);
            BrokerTokenError::Upstream
        })?;
        let now = now();
        // RFC 6749 section 6: the answer may leave out the refresh token
        // (the old one stays valid) and an ID token: what it leaves out is kept.
        stored.remove(EXPIRES_AT);
        stored.remove("expires_in");
        stored.extend(fresh);
        let json = to_store(&stored, now);
        let sealed = Secret::new(json.clone());
        if !self.store.set_link_token(&realm.name, user, alias, &sealed).await.map_err(internal)? {
            return Err(BrokerTokenError::NotStored(format!("no link to {alias:?}")));
        }
        let stored = match serde_json::from_str::<Value>(&json) {
            Ok(Value::Object(m)) => m,
            _ => return Err(internal("a refreshed token is not a JSON object")),
        };
        log::info!("realm {:?}: refreshed the stored token of a user at {alias:?}", realm.name);
        Ok(answer(stored, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_response_carries_its_expiry_and_answers_the_time_left() {
        let tokens = serde_json::json!({"access_token": "a", "expires_in": 300, "token_type": "Bearer"});
        let stored: Map<String, Value> = serde_json::from_str(&to_store(tokens.as_object().unwrap(), 1_000)).unwrap();
        assert_eq!(stored["expires_at"], 1_300);
        assert!(!expired(&stored, 1_299));
        assert!(expired(&stored, 1_300));
        assert_eq!(answer(stored.clone(), 1_100)["expires_in"], 200);
        assert_eq!(answer(stored, 2_000)["expires_in"], 0);
        let no_expiry = serde_json::json!({"access_token": "a"});
        let stored: Map<String, Value> =
            serde_json::from_str(&to_store(no_expiry.as_object().unwrap(), 1_000)).unwrap();
        assert!(!expired(&stored, i64::MAX));
    }
}
