//! The endpoints a client calls about a token it holds: introspection (RFC
//! 7662), for resource servers, and revocation (RFC 7009). Both authenticate
//! the caller as the token endpoint does (`client_auth`) and judge the token
//! with the one access-token check (`bearer`), so a token is active here
//! exactly when userinfo would accept it.
//!
//! Refresh tokens (`refresh`) are told from access tokens by their shape
//! (opaque, where access tokens are compact JWS), so `token_type_hint` is
//! accepted and not needed (RFC 7009 section 2.1, RFC 7662 section 2.1: the
//! hint is only a hint). A refresh token is active while its grant, family
//! and session (for an offline one, its family) are, and only to its own
//! client; revoking it revokes its family (RFC 7009 section 2.1: the access
//! tokens of the same grant too).

use std::collections::BTreeMap;
use std::time::Duration;

use federa_protocol::{OAuthError, OAuthErrorCode};
use serde_json::{json, Map, Value};

use super::bearer::{AccessClaims, BearerError};
use super::client_auth::credentials;
use super::token::TokenError;
use super::{now, state, Broker, RealmInfo};

/// The claims of an active token that introspection answers (RFC 7662
/// section 2.2), when the token has them.
const INTROSPECTED: &[&str] = &["scope", "client_id", "exp", "iat", "sub", "aud", "iss", "jti", "sid"];

/// How long a revocation is remembered past the token's `exp`: instances
/// whose clocks run a little behind must still see it.
const REVOKE_SLACK: Duration = Duration::from_secs(60);

/// The `token` parameter, required by both endpoints.
fn token_param(form: &BTreeMap<String, String>) -> Result<&str, TokenError> {
    form.get("token")
        .map(String::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| TokenError::new(OAuthErrorCode::InvalidRequest, "token is required"))
}

/// The answer for any token that is not active (RFC 7662 section 2.2): it
/// says nothing more, so that a caller learns nothing about why.
fn inactive() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("active".into(), json!(false));
    m
}

impl Broker {
    /// The access token's claims when it passes the check, `None` when it is
    /// not valid here (whatever the reason).
    async fn valid_access_token(&self, realm: &RealmInfo, token: &str) -> Result<Option<AccessClaims>, TokenError> {
        match self.check_access_token(realm, token).await {
            Ok(claims) => Ok(Some(claims)),
            Err(BearerError::Invalid(_) | BearerError::Missing) => Ok(None),
            Err(BearerError::Internal) => Err(TokenError::server("the access token check failed")),
        }
    }

    /// Token introspection (RFC 7662 section 2). The caller must be a
    /// confidential client of the realm (section 2.1 requires authorization,
    /// and section 4 warns of token scanning: a public client proves
    /// nothing). Any confidential client may introspect any token of the
    /// realm, as in Keycloak: resource servers introspect tokens issued to
    /// others.
    pub async fn introspect(
        &self,
        realm: &RealmInfo,
        form: &BTreeMap<String, String>,
        basic: Option<(String, String)>,
    ) -> Result<Map<String, Value>, TokenError> {
        let creds = credentials(form, basic)?;
        let client = self.authenticate_client(realm, &creds).await?;
        if client.is_public() {
            log::info!("realm {:?}: public client {:?} refused at introspection", realm.name, client.client_id);
            return Err(TokenError {
                error: OAuthError::new(OAuthErrorCode::InvalidClient, "introspection needs a confidential client"),
                basic: creds.basic,
            });
        }
        let token = token_param(form)?;
        if super::refresh::looks_like_refresh_token(token) {
            return self.introspect_refresh(realm, &client.client_id, token).await;
        }
        let Some(claims) = self.valid_access_token(realm, token).await? else { return Ok(inactive()) };
        let mut out = Map::new();
        out.insert("active".into(), json!(true));
        for name in INTROSPECTED {
            if let Some(v) = claims.claims().get(*name) {
                out.insert((*name).into(), v.clone());
            }
        }
        out.insert("token_type".into(), json!("Bearer"));
        if let Some(user_id) = claims.user() {
            // A user deleted or disabled since: userinfo refuses the token,
            // so it is not active either.
            let user = self.store.get_user(&realm.name, user_id).await.map_err(TokenError::server)?;
            let Some(user) = user.filter(|u| u.enabled != Some(false)) else { return Ok(inactive()) };
            if let Some(name) = user.username {
                out.insert("username".into(), json!(name));
            }
        }
        Ok(out)
    }

    /// Introspection of a refresh token: active only to its own client (a
    /// refresh token is for its client alone, RFC 6749 section 1.5), with
    /// Keycloak's `token_type` "Refresh".
    async fn introspect_refresh(
        &self,
        realm: &RealmInfo,
        caller: &str,
        token: &str,
    ) -> Result<Map<String, Value>, TokenError> {
        let Some(live) = self.live_refresh_token(realm, token).await? else { return Ok(inactive()) };
        let g = live.grant;
        if g.client_id != caller {
            return Ok(inactive());
        }
        let user = self.store.get_user(&realm.name, &g.user_id).await.map_err(TokenError::server)?;
        let Some(user) = user.filter(|u| u.enabled != Some(false)) else { return Ok(inactive()) };
        let mut out = Map::new();
        out.insert("active".into(), json!(true));
        out.insert("token_type".into(), json!("Refresh"));
        out.insert("client_id".into(), json!(g.client_id));
        out.insert("sub".into(), json!(g.user_id));
        out.insert("scope".into(), json!(g.scopes.join(" ")));
        out.insert("exp".into(), json!(live.exp));
        out.insert("iss".into(), json!(realm.issuer));
        out.insert("sid".into(), json!(g.sid));
        out.insert("auth_time".into(), json!(g.auth_time));
        if let Some(name) = user.username {
            out.insert("username".into(), json!(name));
        }
        Ok(out)
    }

    /// Token revocation (RFC 7009 section 2). An access token issued to the
    /// authenticated client is revoked until it expires. A token that is not
    /// valid here (garbage, expired, already revoked, of another realm)
    /// answers success: section 2.2 says so, since the client could do
    /// nothing with an error. A valid token issued to another client is
    /// refused with `invalid_request`, as section 2.1 requires ("the request
    /// is refused and the client is informed of the error"; it names no
    /// code, and this one is RFC 6749 section 5.2's for a request that
    /// cannot be served as made).
    pub async fn revoke(
        &self,
        realm: &RealmInfo,
        form: &BTreeMap<String, String>,
        basic: Option<(String, String)>,
    ) -> Result<(), TokenError> {
        let creds = credentials(form, basic)?;
        let client = self.authenticate_client(realm, &creds).await?;
        let token = token_param(form)?;
        if super::refresh::looks_like_refresh_token(token) {
            let Some(live) = self.live_refresh_token(realm, token).await? else { return Ok(()) };
            if live.grant.client_id != client.client_id {
                log::info!(
                    "realm {:?}: client {:?} tried to revoke a refresh token of another client",
                    realm.name,
                    client.client_id
                );
                return Err(TokenError::new(OAuthErrorCode::InvalidRequest, "the token was issued to another client"));
            }
            self.revoke_family(realm, &live.grant.family).await?;
            log::info!("realm {:?}: client {:?} revoked a refresh token and its family", realm.name, client.client_id);
            return Ok(());
        }
        let Some(claims) = self.valid_access_token(realm, token).await? else { return Ok(()) };
        if claims.str("client_id") != Some(client.client_id.as_str()) {
            log::info!(
                "realm {:?}: client {:?} tried to revoke a token of another client",
                realm.name,
                client.client_id
            );
            return Err(TokenError::new(OAuthErrorCode::InvalidRequest, "the token was issued to another client"));
        }
        let exp = claims.claims().get("exp").and_then(Value::as_i64).unwrap_or_default();
        let left = Duration::from_secs(u64::try_from(exp - now()).unwrap_or(0));
        let jti = claims.str("jti").unwrap_or_default();
        self.sessions
            .put(&state::revoked_key(&realm.name, jti), "1", left + REVOKE_SLACK)
            .await
            .map_err(TokenError::server)?;
        log::info!("realm {:?}: client {:?} revoked an access token", realm.name, client.client_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_required_and_inactive_says_nothing_more() {
        let err = token_param(&BTreeMap::new()).unwrap_err();
        assert_eq!(err.error.error, OAuthErrorCode::InvalidRequest);
        let empty: BTreeMap<String, String> = [("token".to_owned(), String::new())].into();
        assert!(token_param(&empty).is_err());
        assert_eq!(Value::Object(inactive()), json!({"active": false}));
    }
}
