//! The token endpoint's authorization_code grant (RFC 6749 section 4.1.3,
//! RFC 7636 section 4.6), Federa's ID tokens (OIDC Core section 2) and JWT
//! access tokens (RFC 9068), userinfo (OIDC Core section 5.3) and the JWKS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use federa_protocol::jwt::{half_hash, verify_own};
use federa_protocol::{pkce, OAuthError, OAuthErrorCode, PkceMethod, Secret};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::keys::RealmKeys;
use super::state::{self, CodeGrant, SsoSession, UsedCode};
use super::{now, random_token, Broker, RealmInfo};
use crate::repr::UserRepresentation;

/// A successful token response (RFC 6749 section 5.1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    /// The JWT access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: i64,
    /// The ID token.
    pub id_token: String,
    /// The granted scopes.
    pub scope: String,
}

/// A refused token request: the RFC 6749 section 5.2 body and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// 400, or 401 for client authentication failures.
    pub status: u16,
    /// The body.
    pub error: OAuthError,
    /// Whether the client tried HTTP Basic (the 401 then names the scheme).
    pub basic: bool,
}

fn refuse(code: OAuthErrorCode, msg: &str) -> TokenError {
    TokenError { status: 400, error: OAuthError::new(code, msg), basic: false }
}

fn server_error(e: impl std::fmt::Display) -> TokenError {
    log::error!("token endpoint: {e}");
    TokenError { status: 500, error: OAuthError::new(OAuthErrorCode::ServerError, "internal error"), basic: false }
}

/// A refused bearer token at userinfo (RFC 6750 section 3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    /// No token was sent.
    Missing,
    /// The token is not valid here.
    Invalid(String),
    /// Federa failed.
    Internal,
}

/// The claims of a user that the scopes allow (OIDC Core section 5.4).
pub fn user_claims(user: &UserRepresentation, scopes: &[String]) -> Map<String, Value> {
    let mut c = Map::new();
    let has = |s: &str| scopes.iter().any(|x| x == s);
    if has("profile") {
        if let Some(u) = &user.username {
            c.insert("preferred_username".into(), json!(u));
        }
        let name = [user.first_name.as_deref(), user.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>();
        if !name.is_empty() {
            c.insert("name".into(), json!(name.join(" ")));
        }
        if let Some(v) = &user.first_name {
            c.insert("given_name".into(), json!(v));
        }
        if let Some(v) = &user.last_name {
            c.insert("family_name".into(), json!(v));
        }
    }
    if has("email") {
        if let Some(e) = &user.email {
            c.insert("email".into(), json!(e));
            c.insert("email_verified".into(), json!(user.email_verified.unwrap_or(false)));
        }
    }
    c
}

/// Splits `Authorization: Basic` into client id and secret, each form-urldecoded (RFC 6749 section 2.3.1).
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let (scheme, rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    let dec = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((dec(id)?, dec(secret)?))
}

impl Broker {
    /// The token endpoint.
    pub async fn token(
        &self,
        realm: &RealmInfo,
        form: &BTreeMap<String, String>,
        basic: Option<(String, String)>,
    ) -> Result<TokenResponse, TokenError> {
        let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let used_basic = basic.is_some();
        let invalid_client = |msg: &str| TokenError {
            status: 401,
            error: OAuthError::new(OAuthErrorCode::InvalidClient, msg),
            basic: used_basic,
        };

        // Client authentication: exactly one method (RFC 6749 section 2.3).
        let (client_id, presented) = match (&basic, get("client_secret")) {
            (Some(_), Some(_)) => {
                return Err(refuse(OAuthErrorCode::InvalidRequest, "use one client authentication method"))
            }
            (Some((id, secret)), None) => {
                if get("client_id").is_some_and(|c| c != id) {
                    return Err(refuse(
                        OAuthErrorCode::InvalidRequest,
                        "client_id differs from the authenticated client",
                    ));
                }
                (id.clone(), Some(secret.clone()))
            }
            (None, secret) => {
                let id = get("client_id").ok_or_else(|| invalid_client("client authentication is required"))?;
                (id.to_owned(), secret.map(str::to_owned))
            }
        };
        let client = self
            .find_client(&realm.name, &client_id)
            .await
            .map_err(server_error)?
            .filter(|c| c.enabled != Some(false))
            .ok_or_else(|| invalid_client("unknown client"))?;
        let public = client.public_client == Some(true);
        if !public {
            let stored = client.secret.as_deref().map(Secret::new);
            let ok = match (&stored, &presented) {
                (Some(s), Some(p)) => s.verify(p),
                _ => false,
            };
            if !ok {
                log::info!("realm {:?}: client {client_id:?} failed to authenticate", realm.name);
                return Err(invalid_client("client authentication failed"));
            }
        } else if presented.is_some() {
            return Err(invalid_client("a public client has no secret"));
        }

        match get("grant_type") {
            Some("authorization_code") => {}
            None => return Err(refuse(OAuthErrorCode::InvalidRequest, "grant_type is required")),
            Some(_) => {
                return Err(refuse(OAuthErrorCode::UnsupportedGrantType, "only authorization_code is supported"))
            }
        }
        let code = get("code").ok_or_else(|| refuse(OAuthErrorCode::InvalidRequest, "code is required"))?;
        let taken = self.sessions.take(&state::code_key(&realm.name, code)).await.map_err(server_error)?;
        let Some(taken) = taken else {
            // A code used twice: whatever the first use produced is revoked (RFC 6749 section 4.1.2).
            let used_key = state::used_code_key(&realm.name, code);
            if let Some(used) = self.sessions.take(&used_key).await.map_err(server_error)? {
                if let Ok(used) = serde_json::from_str::<UsedCode>(&used) {
                    let ttl = Duration::from_secs(u64::try_from(realm.token_lifespan).unwrap_or(300) + 60);
                    self.sessions
                        .put(&state::revoked_key(&realm.name, &used.jti), "1", ttl)
                        .await
                        .map_err(server_error)?;
                    log::warn!(
                        "realm {:?}: a code of client {client_id:?} was reused; its tokens are revoked",
                        realm.name
                    );
                }
            }
            return Err(refuse(OAuthErrorCode::InvalidGrant, "the code is invalid, expired or already used"));
        };
        let grant: CodeGrant = serde_json::from_str(&taken).map_err(server_error)?;
        if grant.client_id != client_id {
            return Err(refuse(OAuthErrorCode::InvalidGrant, "the code was issued to another client"));
        }
        if get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
            return Err(refuse(OAuthErrorCode::InvalidGrant, "redirect_uri does not match the authorization request"));
        }
        match (&grant.code_challenge, get("code_verifier")) {
            (Some(challenge), Some(verifier)) => {
                if !pkce::verify(PkceMethod::S256, verifier, challenge) {
                    return Err(refuse(
                        OAuthErrorCode::InvalidGrant,
                        "code_verifier does not match the code_challenge",
                    ));
                }
            }
            (Some(_), None) => return Err(refuse(OAuthErrorCode::InvalidGrant, "code_verifier is required")),
            (None, Some(_)) => {
                return Err(refuse(OAuthErrorCode::InvalidGrant, "code_verifier given but no code_challenge was"))
            }
            (None, None) => {}
        }
        // The user and the session are independent reads: made at once.
        let sso_key = state::sso_key_public(&realm.name, &grant.sid);
        let (user, sso) = tokio::join!(self.store.get_user(&realm.name, &grant.user_id), self.sessions.get(&sso_key));
        let user = user
            .map_err(server_error)?
            .filter(|u| u.enabled != Some(false))
            .ok_or_else(|| refuse(OAuthErrorCode::InvalidGrant, "the user no longer exists or is disabled"))?;
        if sso.map_err(server_error)?.is_none() {
            return Err(refuse(OAuthErrorCode::InvalidGrant, "the session that issued the code has ended"));
        }

        let keys = self.keys.get(self.store.as_ref(), &realm.name).await.map_err(server_error)?;
        let now = now();
        let jti = random_token();
        let scope = grant.scopes.join(" ");
        let mut access = Map::new();
        access.insert("iss".into(), json!(realm.issuer));
        access.insert("sub".into(), json!(grant.user_id));
        access.insert("aud".into(), json!(client_id));
        access.insert("exp".into(), json!(now + realm.token_lifespan));
        access.insert("iat".into(), json!(now));
        access.insert("jti".into(), json!(jti));
        access.insert("client_id".into(), json!(client_id));
        access.insert("scope".into(), json!(scope));
        access.insert("auth_time".into(), json!(grant.auth_time));
        access.insert("sid".into(), json!(grant.sid));

        let mut id = user_claims(&user, &grant.scopes);
        id.insert("iss".into(), json!(realm.issuer));
        id.insert("sub".into(), json!(grant.user_id));
        id.insert("aud".into(), json!(client_id));
        id.insert("azp".into(), json!(client_id));
        id.insert("exp".into(), json!(now + realm.token_lifespan));
        id.insert("iat".into(), json!(now));
        id.insert("auth_time".into(), json!(grant.auth_time));
        id.insert("sid".into(), json!(grant.sid));
        if let Some(n) = &grant.nonce {
            id.insert("nonce".into(), json!(n));
        }
        // The code's use is recorded before the tokens exist, so that a reuse
        // racing this exchange finds what to revoke.
        let used = serde_json::to_string(&UsedCode { jti }).map_err(server_error)?;
        let ttl = Duration::from_secs(u64::try_from(realm.token_lifespan).unwrap_or(300) + 60);
        self.sessions.put(&state::used_code_key(&realm.name, code), &used, ttl).await.map_err(server_error)?;
        let (access_token, id_token) = sign_pair(keys, access, id).await?;
        Ok(TokenResponse { access_token, token_type: "Bearer", expires_in: realm.token_lifespan, id_token, scope })
    }

    /// The realm's public keys as a JWK Set.
    pub async fn jwks(&self, realm: &str) -> Result<Value, crate::StoreError> {
        let keys = self.keys.get(self.store.as_ref(), realm).await?;
        Ok(json!({ "keys": keys.public }))
    }

    /// The signing algorithm of the realm's active key.
    pub async fn signing_alg(&self, realm: &str) -> Result<String, crate::StoreError> {
        Ok(self.keys.get(self.store.as_ref(), realm).await?.signer.alg().to_owned())
    }

    /// Userinfo: the claims of the access token's user that its scopes allow.
    pub async fn userinfo(&self, realm: &RealmInfo, bearer: Option<&str>) -> Result<Map<String, Value>, BearerError> {
        let token = bearer.ok_or(BearerError::Missing)?;
        let keys = self.keys.get(self.store.as_ref(), &realm.name).await.map_err(|e| {
            log::error!("userinfo: {e}");
            BearerError::Internal
        })?;
        // RFC 9068 section 4: only a token typed at+jwt is an access token;
        // an ID token of this realm is refused here whatever its claims.
        if jws_typ(token).as_deref() != Some("at+jwt") {
            return Err(BearerError::Invalid("the token is not an access token".into()));
        }
        let claims =
            verify_own(token, &keys.public).map_err(|_| BearerError::Invalid("the token is not valid".into()))?;
        let s = |k: &str| claims.get(k).and_then(Value::as_str);
        if s("iss") != Some(realm.issuer.as_str()) || s("client_id").is_none() {
            return Err(BearerError::Invalid("the token is not an access token of this realm".into()));
        }
        if claims.get("exp").and_then(Value::as_i64).is_none_or(|e| e <= now()) {
            return Err(BearerError::Invalid("the token has expired".into()));
        }
        let jti = s("jti").unwrap_or_default();
        let revoked =
            self.sessions.get(&state::revoked_key(&realm.name, jti)).await.map_err(|_| BearerError::Internal)?;
        if revoked.is_some() {
            return Err(BearerError::Invalid("the token was revoked".into()));
        }
        let sid = s("sid").unwrap_or_default();
        let session: Option<String> =
            self.sessions.get(&state::sso_key_public(&realm.name, sid)).await.map_err(|_| BearerError::Internal)?;
        if session.and_then(|s| serde_json::from_str::<SsoSession>(&s).ok()).is_none() {
            return Err(BearerError::Invalid("the session of this token has ended".into()));
        }
        let sub = s("sub").unwrap_or_default();
        let user = self
            .store
            .get_user(&realm.name, sub)
            .await
            .map_err(|_| BearerError::Internal)?
            .filter(|u| u.enabled != Some(false))
            .ok_or_else(|| BearerError::Invalid("the user no longer exists".into()))?;
        let scopes: Vec<String> = s("scope").unwrap_or_default().split(' ').map(str::to_owned).collect();
        let mut out = Map::new();
        out.insert("sub".into(), json!(sub));
        out.extend(user_claims(&user, &scopes));
        Ok(out)
    }
}

/// The `typ` of a compact JWS header, unverified (the signature is checked next).
fn jws_typ(token: &str) -> Option<String> {
    use base64::Engine as _;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("typ").and_then(Value::as_str).map(str::to_owned)
}

/// Signs the access token and the ID token (with its `at_hash`) off the async
/// workers: an RSA signature is hundreds of microseconds of CPU.
async fn sign_pair(
    keys: Arc<RealmKeys>,
    access: Map<String, Value>,
    mut id: Map<String, Value>,
) -> Result<(String, String), TokenError> {
    tokio::task::spawn_blocking(move || {
        let access_token = keys.signer.sign("at+jwt", &access).map_err(server_error)?;
        if let Some(h) = half_hash(keys.signer.alg(), &access_token) {
            id.insert("at_hash".into(), json!(h));
        }
        let id_token = keys.signer.sign("JWT", &id).map_err(server_error)?;
        Ok((access_token, id_token))
    })
    .await
    .map_err(server_error)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        use base64::Engine as _;
        let h = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("my%20app:s%3Acret"));
        assert_eq!(parse_basic(&h), Some(("my app".into(), "s:cret".into())));
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }

    #[test]
    fn claims_follow_scopes() {
        let u = UserRepresentation {
            username: Some("alice".into()),
            first_name: Some("Alice".into()),
            last_name: Some("Anders".into()),
            email: Some("a@x.test".into()),
            email_verified: Some(true),
            ..Default::default()
        };
        let none = user_claims(&u, &["openid".into()]);
        assert!(none.is_empty());
        let all = user_claims(&u, &["openid".into(), "profile".into(), "email".into()]);
        assert_eq!(all["name"], "Alice Anders");
        assert_eq!(all["email_verified"], true);
        assert_eq!(all["preferred_username"], "alice");
    }
}
