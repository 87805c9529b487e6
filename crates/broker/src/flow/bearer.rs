//! The one check of Federa's own access tokens (RFC 9068), shared by
//! userinfo, introspection and revocation: signature by a realm key, `typ:
//! at+jwt`, the realm's issuer, expiry, not revoked, and what the token
//! stands for still there: a user's token needs its live SSO session (`sid`)
//! and, when it came with a refresh token, its live refresh-token family (an
//! offline family stands without the session);
//! a client's own token (client_credentials, marked by
//! [`GRANT_CLAIM`](super::token::GRANT_CLAIM), never with a `sid`) needs its
//! client still enabled and allowed the grant.

use federa_protocol::jwt::{peek_typ, verify_own_cached};
use federa_protocol::GrantType;
use serde_json::{Map, Value};

use super::claims::ClaimsFor;
use super::state::{self, Family, SsoSession};
use super::token::GRANT_CLAIM;
use super::{now, Broker, RealmInfo};

/// A refused bearer token (RFC 6750 section 3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    /// No token was sent.
    Missing,
    /// The token is not valid here.
    Invalid(String),
    /// Federa failed.
    Internal,
}

/// The claims of an access token that passed every check.
#[derive(Debug, Clone)]
pub struct AccessClaims(Map<String, Value>);

impl AccessClaims {
    /// A string claim.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    /// The subject: a user, or a client's service account.
    pub fn subject(&self) -> &str {
        self.str("sub").unwrap_or_default()
    }

    /// The user, unless the token is a client's own (client_credentials).
    pub fn user(&self) -> Option<&str> {
        (!self.is_client_token()).then(|| self.subject())
    }

    /// Whether a client got this token for itself (client_credentials).
    pub fn is_client_token(&self) -> bool {
        self.str(GRANT_CLAIM) == Some(GrantType::ClientCredentials.as_str())
    }

    /// Every claim.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The granted scopes.
    pub fn scopes(&self) -> Vec<String> {
        self.str("scope").unwrap_or_default().split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }
}

fn internal(e: impl std::fmt::Display) -> BearerError {
    log::error!("access token check: {e}");
    BearerError::Internal
}

impl Broker {
    /// Checks an access token presented to this realm.
    pub async fn check_access_token(&self, realm: &RealmInfo, token: &str) -> Result<AccessClaims, BearerError> {
        // RFC 9068 section 4: only a token typed at+jwt is an access token;
        // an ID token of this realm is refused here whatever its claims.
        if peek_typ(token).as_deref() != Some("at+jwt") {
            return Err(BearerError::Invalid("the token is not an access token".into()));
        }
        let keys = self.keys.get(self.store.as_ref(), &realm.name).await.map_err(internal)?;
        let claims = verify_own_cached(token, &keys.public, &keys.verifiers)
            .map_err(|_| BearerError::Invalid("the token is not valid".into()))?;
        let claims = AccessClaims(claims);
        if claims.str("iss") != Some(realm.issuer.as_str()) || claims.str("client_id").is_none() {
            return Err(BearerError::Invalid("the token is not an access token of this realm".into()));
        }
        if claims.0.get("exp").and_then(Value::as_i64).is_none_or(|e| e <= now()) {
            return Err(BearerError::Invalid("the token has expired".into()));
        }
        let jti = claims.str("jti").unwrap_or_default();
        let revoked_key = state::revoked_key(&realm.name, jti);
        // A token with a session must have it alive; a token without one
        // passes only as a client's own token. Never both, never neither: a
        // user's token without its `sid` is refused, whatever else it says.
        let (revoked, alive, ended) = match (claims.str("sid"), claims.is_client_token()) {
            (Some(sid), false) => {
                // One read: the revocation mark, the session and, for a token
                // of a refresh-token family, the family. A family's token
                // needs its family live, and then its session unless the
                // family is offline (OIDC Core section 11).
                let family = claims.str(state::FAMILY_CLAIM);
                let mut keys = vec![revoked_key, state::sso_key_public(&realm.name, sid)];
                keys.extend(family.map(|f| state::family_key(&realm.name, f)));
                let mut found = self.sessions.get_many(&keys).await.map_err(internal)?.into_iter();
                let (revoked, session, family_record) =
                    (found.next().flatten(), found.next().flatten(), found.next().flatten());
                // A session idle past ssoSessionIdleTimeout no longer stands behind its tokens.
                let session_alive = session
                    .and_then(|s| serde_json::from_str::<SsoSession>(&s).ok())
                    .is_some_and(|s| realm.session_serves(&s, now()));
                let alive = match family {
                    None => session_alive,
                    Some(_) => family_record
                        .and_then(|f| serde_json::from_str::<Family>(&f).ok())
                        .filter(|f| claims.str("sub") == Some(f.user_id.as_str()))
                        .is_some_and(|f| f.offline || session_alive),
                };
                (Ok(revoked), alive, "the session or the grant of this token has ended")
            }
            (None, true) => {
                let client_id = claims.str("client_id").unwrap_or_default();
                let (revoked, client) =
                    tokio::join!(self.sessions.get(&revoked_key), self.find_client(&realm.name, client_id));
                // Disabling the client or its service accounts ends its tokens.
                let alive = client.map_err(internal)?.is_some_and(|c| {
                    c.may_use_client_credentials() && claims.str("sub") == Some(c.service_account_subject().as_str())
                });
                (revoked, alive, "the client of this token is disabled or may no longer use the grant")
            }
            _ => return Err(BearerError::Invalid("the token is not an access token of this realm".into())),
        };
        if revoked.map_err(internal)?.is_some() {
            return Err(BearerError::Invalid("the token was revoked".into()));
        }
        if !alive {
            return Err(BearerError::Invalid(ended.into()));
        }
        Ok(claims)
    }

    /// Userinfo (OIDC Core section 5.3): the claims of the access token's
    /// user that its scopes allow.
    pub async fn userinfo(&self, realm: &RealmInfo, bearer: Option<&str>) -> Result<Map<String, Value>, BearerError> {
        let claims = self.check_access_token(realm, bearer.ok_or(BearerError::Missing)?).await?;
        let sub = claims
            .user()
            .ok_or_else(|| BearerError::Invalid("the token is a client's own and names no user".into()))?;
        let scopes = claims.scopes();
        let client_id = claims.str("client_id").unwrap_or_default();
        // The user, their roles (only when the scopes show them) and the
        // client (cached), read at once.
        let with_roles = super::claims::needs_roles(ClaimsFor::Userinfo, &scopes);
        let roles = async {
            match with_roles {
                true => self.store.user_roles(&realm.name, sub).await.map(Some),
                false => Ok(None),
            }
        };
        let (user, roles, client) =
            tokio::join!(self.store.get_user(&realm.name, sub), roles, self.find_client(&realm.name, client_id));
        let mut user = user
            .map_err(internal)?
            .filter(|u| u.enabled != Some(false))
            .ok_or_else(|| BearerError::Invalid("the user no longer exists".into()))?;
        user.realm_roles = roles.map_err(internal)?.map(|r| r.into_iter().filter_map(|r| r.name).collect());
        let client = client
            .map_err(internal)?
            .ok_or_else(|| BearerError::Invalid("the client of this token no longer exists".into()))?;
        let mut out = super::claims::user_claims(&user, &client, &scopes, ClaimsFor::Userinfo);
        out.insert("sub".into(), Value::String(sub.to_owned()));
        Ok(out)
    }
}
