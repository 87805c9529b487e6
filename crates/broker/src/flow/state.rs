//! What the flows keep in the session store between requests. Keys hold a
//! SHA-256 of the secret value (code, session id), never the value itself, so
//! that a read of the store does not hand out usable codes or sessions.

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// A hex SHA-256, for store keys derived from secrets.
pub fn digest(value: &str) -> String {
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}

/// The store key of a sign-in flow.
pub fn flow_key(flow_id: &str) -> String {
    format!("flow:{}", digest(flow_id))
}

/// The store key of an upstream request's `state`.
pub fn upstream_key(state: &str) -> String {
    format!("up:{}", digest(state))
}

/// The store key of an authorization code.
pub fn code_key(realm: &str, code: &str) -> String {
    format!("code:{realm}:{}", digest(code))
}

/// The store key remembering a code that was exchanged.
pub fn used_code_key(realm: &str, code: &str) -> String {
    format!("used:{realm}:{}", digest(code))
}

/// The store key of a revoked access token.
pub fn revoked_key(realm: &str, jti: &str) -> String {
    format!("revoked:{realm}:{jti}")
}

/// The store key remembering a client assertion's `jti` until it expires
/// (RFC 7523 section 3, item 7: each is used once).
pub fn assertion_key(realm: &str, client_id: &str, jti: &str) -> String {
    format!("jti:{realm}:{}", digest(&format!("{client_id}\n{jti}")))
}

/// The store key of a refresh token (RFC 6749 section 1.5): its
/// [`RefreshGrant`], taken when it is used (single use, section 10.4 and RFC
/// 9700 section 4.14.2: rotation).
pub fn refresh_key(realm: &str, token: &str) -> String {
    format!("rt:{realm}:{}", digest(token))
}

/// The store key written beside a refresh token, with its family, when it is
/// issued, and left behind when the token is used: a token presented again
/// whose grant is gone but whose mark is live was used already, and its
/// family is revoked (RFC 9700 section 4.14.2, reuse detection).
pub fn refresh_used_key(realm: &str, token: &str) -> String {
    format!("rtu:{realm}:{}", digest(token))
}

/// The store key of a refresh-token family: every refresh token rotated from
/// one authorization code, and the access tokens they produced (which carry
/// the family in [`FAMILY_CLAIM`]). Deleting it revokes them all.
pub fn family_key(realm: &str, family: &str) -> String {
    format!("rtf:{realm}:{family}")
}

/// The access-token claim naming the refresh-token family it came from: the
/// access-token check requires that family alive, so that revoking a family
/// (reuse, RFC 7009 revocation) ends its access tokens at once.
pub const FAMILY_CLAIM: &str = "rfam";

/// What a refresh token grants: the authorization it carries on, as issued
/// with the code (scopes never widen, RFC 6749 section 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshGrant {
    /// Its family.
    pub family: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The user.
    pub user_id: String,
    /// The SSO session's public id.
    pub sid: String,
    /// The scopes granted with the code.
    pub scopes: Vec<String>,
    /// When the user authenticated.
    pub auth_time: i64,
    /// Granted with `offline_access` (OIDC Core section 11): not bound to
    /// the SSO session's life.
    pub offline: bool,
    /// When the family began (the code's exchange), seconds.
    pub started: i64,
    /// For an offline grant, the SSO session it came from as it was then
    /// (without its upstream ID token and address): its provider, user and
    /// link are checked at each refresh, the session itself being free to
    /// end. None for a session's grant, and in grants written before it was
    /// kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<SsoSession>,
}

/// A refresh-token family's record; its being live is what keeps the
/// family's refresh and access tokens usable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    /// The client.
    pub client_id: String,
    /// The user.
    pub user_id: String,
    /// The SSO session's public id.
    pub sid: String,
    /// An offline family (see [`RefreshGrant::offline`]).
    pub offline: bool,
    /// When it began, seconds.
    pub started: i64,
    /// When it was last refreshed, seconds (an offline family's idle time
    /// counts from here).
    pub last_use: i64,
}

/// What a stored refresh grant needs read when it is used: its family and
/// its SSO session (in that order), and its user. Given to storage so that
/// using a refresh token is one trip.
pub fn refresh_refs(realm: &str, grant: &str) -> Option<crate::store::RefreshRefs> {
    let g: RefreshGrant = serde_json::from_str(grant).ok()?;
    Some(crate::store::RefreshRefs {
        keys: vec![family_key(realm, &g.family), sso_key_public(realm, &g.sid)],
        user_id: g.user_id,
    })
}

/// The public id of an SSO session: the `sid` claim of its tokens. It is a
/// digest of the browser's session cookie, so a token never carries the
/// cookie itself (which would let any client or API that sees a token sign
/// in as the user elsewhere).
pub fn public_sid(cookie_sid: &str) -> String {
    digest(cookie_sid)
}

/// The store key of an SSO session, from the browser's cookie.
pub fn sso_key(realm: &str, cookie_sid: &str) -> String {
    sso_key_public(realm, &public_sid(cookie_sid))
}

/// The store key of an SSO session, from its public id (a token's `sid`).
pub fn sso_key_public(realm: &str, public_sid: &str) -> String {
    format!("sso:{realm}:{public_sid}")
}

/// An upstream authorization request in flight.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamState {
    /// The client's authorization request it serves.
    pub request: super::authorize::AuthRequest,
    /// The sign-in flow it serves (the browser's `FEDERA_FLOW` cookie).
    pub flow_id: String,
    /// The realm.
    pub realm: String,
    /// The upstream alias.
    pub alias: String,
    /// The nonce sent upstream.
    pub nonce: Option<String>,
    /// The PKCE verifier.
    pub verifier: Option<String>,
    /// When Federa sent the browser upstream (seconds since the epoch): the
    /// moment a client's `max_age` is measured from (0 in states written
    /// before it was kept, read as "now").
    #[serde(default)]
    pub started: i64,
}

/// An authorization code's grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeGrant {
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the request.
    pub redirect_uri: String,
    /// The user.
    pub user_id: String,
    /// The client's nonce.
    pub nonce: Option<String>,
    /// The PKCE challenge.
    pub code_challenge: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// When the user authenticated.
    pub auth_time: i64,
    /// The SSO session's public id (never the cookie value).
    pub sid: String,
}

/// What a stored code grant points at: the store key of its SSO session and
/// its user. Given to storage so that redeeming a code is one trip.
pub fn grant_refs(realm: &str, grant: &str) -> Option<crate::store::GrantRefs> {
    let g: CodeGrant = serde_json::from_str(grant).ok()?;
    Some(crate::store::GrantRefs {
        session_key: sso_key_public(realm, &g.sid),
        client_index: (super::sessions::clients_index(realm, &g.sid), g.client_id),
        user_id: g.user_id,
    })
}

/// A code that was exchanged, and what it produced (to revoke on reuse).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsedCode {
    /// The access token's `jti`.
    pub jti: String,
    /// The refresh-token family the exchange started (empty in records
    /// written before it was kept): revoked on reuse with the family's
    /// refresh and access tokens.
    #[serde(default)]
    pub family: String,
}

/// An SSO session: a browser signed in to the realm. Fields after `idp`
/// came later and default when absent, so older records still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoSession {
    /// The user.
    pub user_id: String,
    /// When the user authenticated upstream.
    pub auth_time: i64,
    /// Through which provider (its alias).
    pub idp: String,
    /// The upstream session's id (the `sid` of its ID token), when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_sid: Option<String>,
    /// The user's subject at the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_sub: Option<String>,
    /// The subject the user's link is kept under, when a BROKER_ID username
    /// mapper made it differ from `upstream_sub` (absent: `upstream_sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_sub: Option<String>,
    /// When the session was created, seconds (0 in older records).
    #[serde(default)]
    pub started: i64,
    /// When the session last answered an authorization request or a
    /// refresh of one of its refresh tokens, seconds (0 until then).
    #[serde(default)]
    pub last_access: i64,
    /// The address the sign-in came from, when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip_address: String,
    /// The upstream's ID token, kept only when its provider has a
    /// `logoutUrl`: the `id_token_hint` of the upstream logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_id_token: Option<UpstreamIdToken>,
}

/// An upstream ID token kept in a session record for upstream logout. It
/// names the person and their upstream session, so it never prints.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UpstreamIdToken(String);

impl UpstreamIdToken {
    /// Wraps a compact ID token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token, for the one request that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for UpstreamIdToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UpstreamIdToken(***)")
    }
}

impl SsoSession {
    /// When the session was last used: its last SSO answer, else its start.
    pub fn last_access(&self) -> i64 {
        self.last_access.max(self.started())
    }

    /// When the session began: its creation, or for older records the
    /// authentication.
    pub fn started(&self) -> i64 {
        if self.started > 0 {
            self.started
        } else {
            self.auth_time
        }
    }
}
