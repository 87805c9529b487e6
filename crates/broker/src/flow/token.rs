//! The token endpoint: one handler per grant (authorization_code, RFC 6749
//! section 4.1.3 and RFC 7636 section 4.6; client_credentials, RFC 6749
//! section 4.4; refresh_token, RFC 6749 section 6, in `refresh`) after
//! client authentication (`client_auth`), Federa's ID tokens (OIDC Core
//! section 2) and JWT access tokens (RFC 9068), and the JWKS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use federa_protocol::jwt::half_hash;
use federa_protocol::{pkce, GrantType, OAuthError, OAuthErrorCode, PkceMethod};
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::claims::{user_claims, ClaimsFor};
use super::keys::RealmKeys;
use super::login::secs;
use super::refresh;
use super::state::{self, CodeGrant, UsedCode};
use super::{now, random_token, Broker, RealmInfo};
use crate::model::Client;
use crate::store::{IssueFor, Redemption};

/// A successful token response (RFC 6749 section 5.1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    /// The JWT access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: i64,
    /// The ID token; none for a client's own token (there is no user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The refresh token (RFC 6749 section 1.5); none for a client's own token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The granted scopes.
    pub scope: String,
}

/// The claim that marks an access token a client got for itself with the
/// client_credentials grant (Auth0 names it the same way): `"gty":
/// "client_credentials"`. Such a token has no `sid`, and
/// `check_access_token` accepts a token without `sid` only when it carries
/// this mark, so a user's token never passes without its session.
pub const GRANT_CLAIM: &str = "gty";

/// The scopes a client_credentials request may name without being refused,
/// none of which is granted: they concern a user (OIDC Core sections 3.1.2.1
/// and 5.4), and a client's own token has none. Client libraries send
/// `openid` out of habit, so it is dropped rather than refused.
const USER_SCOPES: &[&str] = &["openid", "profile", "email"];

/// A refused token request: the RFC 6749 section 5.2 body. The web layer
/// alone turns its code into a status (401 for `invalid_client`, 500 for
/// `server_error`, else 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// The body.
    pub error: OAuthError,
    /// Whether the client tried HTTP Basic (the 401 then names the scheme).
    pub basic: bool,
}

impl TokenError {
    /// A refusal with `code`.
    pub fn new(code: OAuthErrorCode, msg: &str) -> Self {
        Self { error: OAuthError::new(code, msg), basic: false }
    }

    /// An internal failure: logged here, never described to the client.
    pub fn server(e: impl std::fmt::Display) -> Self {
        log::error!("token endpoint: {e}");
        Self::new(OAuthErrorCode::ServerError, "internal error")
    }
}

pub(super) fn refuse(code: OAuthErrorCode, msg: &str) -> TokenError {
    TokenError::new(code, msg)
}

pub(super) fn server_error(e: impl std::fmt::Display) -> TokenError {
    TokenError::server(e)
}

/// What a user's access token and ID token say, for one grant: the user's
/// claims first (`flow::claims`), then the tokens' own, which replace any of
/// the same name. The authorization_code and refresh_token grants both issue
/// through it, so their tokens say the same.
pub(super) struct UserTokenClaims<'a> {
    pub realm: &'a RealmInfo,
    pub client: &'a Client,
    pub user: &'a crate::repr::UserRepresentation,
    pub user_id: &'a str,
    pub scopes: &'a [String],
    pub sid: &'a str,
    pub auth_time: i64,
    /// The refresh-token family the access token belongs to.
    pub family: &'a str,
    /// The access token's id.
    pub jti: &'a str,
    pub now: i64,
}

impl UserTokenClaims<'_> {
    /// The access token's claims and the ID token's (without a nonce).
    pub(super) fn build(&self) -> (Map<String, Value>, Map<String, Value>) {
        let (realm, client_id) = (self.realm, self.client.client_id.as_str());
        let exp = self.now + secs(realm.token_lifespan);
        let mut access = user_claims(self.user, self.client, self.scopes, ClaimsFor::AccessToken);
        access.insert("iss".into(), json!(realm.issuer));
        access.insert("sub".into(), json!(self.user_id));
        access.insert("aud".into(), json!(client_id));
        access.insert("exp".into(), json!(exp));
        access.insert("iat".into(), json!(self.now));
        access.insert("jti".into(), json!(self.jti));
        access.insert("client_id".into(), json!(client_id));
        access.insert("scope".into(), json!(self.scopes.join(" ")));
        access.insert("auth_time".into(), json!(self.auth_time));
        access.insert("sid".into(), json!(self.sid));
        access.insert(state::FAMILY_CLAIM.into(), json!(self.family));

        let mut id = user_claims(self.user, self.client, self.scopes, ClaimsFor::IdToken);
        id.insert("iss".into(), json!(realm.issuer));
        id.insert("sub".into(), json!(self.user_id));
        id.insert("aud".into(), json!(client_id));
        id.insert("azp".into(), json!(client_id));
        id.insert("exp".into(), json!(exp));
        id.insert("iat".into(), json!(self.now));
        id.insert("auth_time".into(), json!(self.auth_time));
        id.insert("sid".into(), json!(self.sid));
        (access, id)
    }
}

impl Broker {
    /// The token endpoint: client authentication, then the grant's handler.
    pub async fn token(
        &self,
        realm: &RealmInfo,
        form: &BTreeMap<String, String>,
        basic: Option<(String, String)>,
    ) -> Result<TokenResponse, TokenError> {
        let creds = super::client_auth::credentials(form, basic)?;
        let client = self.authenticate_client(realm, &creds).await?;
        let grant = form.get("grant_type").map(String::as_str).filter(|g| !g.is_empty());
        match grant.map(str::parse::<GrantType>) {
            None => Err(refuse(OAuthErrorCode::InvalidRequest, "grant_type is required")),
            Some(Ok(GrantType::AuthorizationCode)) => self.authorization_code_grant(realm, &client, form).await,
            Some(Ok(GrantType::ClientCredentials)) => self.client_credentials_grant(realm, &client, form).await,
            Some(Ok(GrantType::RefreshToken)) => self.refresh_token_grant(realm, &client, form).await,
            Some(Err(_)) => Err(refuse(
                OAuthErrorCode::UnsupportedGrantType,
                "only authorization_code, refresh_token and client_credentials are supported",
            )),
        }
    }

    /// The client_credentials grant (RFC 6749 section 4.4): a confidential
    /// client with service accounts enabled gets an access token for itself.
    /// No ID token and no refresh token (section 4.4.3): there is no user and
    /// the client can always authenticate again.
    async fn client_credentials_grant(
        &self,
        realm: &RealmInfo,
        client: &Client,
        form: &BTreeMap<String, String>,
    ) -> Result<TokenResponse, TokenError> {
        if !client.may_use_client_credentials() {
            return Err(refuse(
                OAuthErrorCode::UnauthorizedClient,
                "client_credentials needs a confidential client with service accounts enabled",
            ));
        }
        let scope = client_credentials_scope(form.get("scope").map(String::as_str))?;
        let keys = self.keys.get(self.store.as_ref(), &realm.name).await.map_err(server_error)?;
        let now = now();
        let lifespan = secs(realm.token_lifespan);
        let client_id = client.client_id.as_str();
        let mut access = Map::new();
        access.insert("iss".into(), json!(realm.issuer));
        access.insert("sub".into(), json!(client.service_account_subject()));
        access.insert("aud".into(), json!(client_id));
        access.insert("exp".into(), json!(now + lifespan));
        access.insert("iat".into(), json!(now));
        access.insert("jti".into(), json!(random_token()));
        access.insert("client_id".into(), json!(client_id));
        access.insert("scope".into(), json!(scope));
        access.insert(GRANT_CLAIM.into(), json!(GrantType::ClientCredentials.as_str()));
        let access_token =
            tokio::task::spawn_blocking(move || keys.signer.sign("at+jwt", &access).map_err(server_error))
                .await
                .map_err(server_error)??;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifespan,
            id_token: None,
            refresh_token: None,
            scope,
        })
    }

    /// The authorization_code grant (RFC 6749 section 4.1.3, RFC 7636 section 4.6).
    async fn authorization_code_grant(
        &self,
        realm: &RealmInfo,
        client: &Client,
        form: &BTreeMap<String, String>,
    ) -> Result<TokenResponse, TokenError> {
        let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let client_id = client.client_id.as_str();
        let lifespan = secs(realm.token_lifespan);
        let revoke_ttl = realm.token_lifespan + Duration::from_secs(60);
        let code = get("code").ok_or_else(|| refuse(OAuthErrorCode::InvalidRequest, "code is required"))?;
        // One trip: the code taken, its use recorded (before any token
        // exists, so that a reuse racing this exchange finds what to revoke),
        // and its session and user read.
        let jti = random_token();
        // The refresh token and its family are written in the same trip
        // (`refresh::issue`), when the code and its session are live.
        let (family_id, refresh_token) = (random_token(), random_token());
        let issue: IssueFor = {
            let (family_id, refresh_token) = (family_id.clone(), refresh_token.clone());
            let lifetimes = refresh::Lifetimes::of(realm);
            let started = now();
            Arc::new(move |grant: &str, session: &str| {
                refresh::issue(&lifetimes, &family_id, &refresh_token, grant, session, started)
            })
        };
        let redeemed = self
            .redeemer
            .redeem_code(Redemption {
                realm: realm.name.clone(),
                code_key: state::code_key(&realm.name, code),
                used_key: state::used_code_key(&realm.name, code),
                used_value: serde_json::to_string(&UsedCode { jti: jti.clone(), family: family_id.clone() })
                    .map_err(server_error)?,
                used_ttl: revoke_ttl,
                refs: state::grant_refs,
                // The redemption records the client on the session (a set add:
                // concurrent exchanges never lose one); back-channel logout
                // will tell these clients.
                index_ttl: realm.sso_max,
                issue: Some(issue),
            })
            .await
            .map_err(server_error)?;
        let Some(taken) = redeemed.grant else {
            // A code used twice: whatever the first use produced is revoked
            // (RFC 6749 section 4.1.2): its access token, and its refresh
            // token's family (with every token rotated from it).
            if let Some(used) = redeemed.previous_use.and_then(|u| serde_json::from_str::<UsedCode>(&u).ok()) {
                self.sessions
                    .put(&state::revoked_key(&realm.name, &used.jti), "1", revoke_ttl)
                    .await
                    .map_err(server_error)?;
                if !used.family.is_empty() {
                    self.revoke_family(realm, &used.family).await?;
                }
                log::warn!("realm {:?}: a code of client {client_id:?} was reused; its tokens are revoked", realm.name);
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
        let user = redeemed
            .user
            .filter(|u| u.enabled != Some(false))
            .ok_or_else(|| refuse(OAuthErrorCode::InvalidGrant, "the user no longer exists or is disabled"))?;
        if redeemed.session.is_none() {
            return Err(refuse(OAuthErrorCode::InvalidGrant, "the session that issued the code has ended"));
        }

        let keys = self.keys.get(self.store.as_ref(), &realm.name).await.map_err(server_error)?;
        let now = now();
        let scope = grant.scopes.join(" ");
        let (access, mut id) = UserTokenClaims {
            realm,
            client,
            user: &user,
            user_id: &grant.user_id,
            scopes: &grant.scopes,
            sid: &grant.sid,
            auth_time: grant.auth_time,
            family: &family_id,
            jti: &jti,
            now,
        }
        .build();
        if let Some(n) = &grant.nonce {
            id.insert("nonce".into(), json!(n));
        }
        let (access_token, id_token) = sign_pair(keys, access, id).await?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifespan,
            id_token: Some(id_token),
            refresh_token: Some(refresh_token),
            scope,
        })
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
}

/// The scope a client's own token carries: the requested user scopes are
/// dropped (see [`USER_SCOPES`]) and any other value is refused. Federa has
/// no client scopes to grant yet, and granting a value merely because a
/// client asked for it would let the client give itself any permission a
/// resource server reads from `scope` (Keycloak likewise refuses a scope the
/// client has not been given).
fn client_credentials_scope(requested: Option<&str>) -> Result<String, TokenError> {
    let requested = requested.unwrap_or_default().split(' ').filter(|s| !s.is_empty());
    if let Some(other) = requested.clone().find(|s| !USER_SCOPES.contains(s)) {
        return Err(refuse(OAuthErrorCode::InvalidScope, &format!("scope {other:?} cannot be granted to this client")));
    }
    Ok(String::new())
}

/// Signs the access token and the ID token (with its `at_hash`) off the async
/// workers: an RSA signature is hundreds of microseconds of CPU.
pub(super) async fn sign_pair(
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
    fn a_client_gets_no_user_scope_and_no_unknown_one() {
        assert_eq!(client_credentials_scope(None).unwrap(), "");
        assert_eq!(client_credentials_scope(Some(" openid  profile email ")).unwrap(), "");
        let err = client_credentials_scope(Some("openid admin")).unwrap_err();
        assert_eq!(err.error.error, OAuthErrorCode::InvalidScope);
    }
}
