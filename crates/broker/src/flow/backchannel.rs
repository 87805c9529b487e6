//! OpenID Connect Back-Channel Logout 1.0, both ways.
//!
//! Receiving (section 2.5 to 2.8): an upstream posts a Logout Token to
//! `{realm}/protocol/openid-connect/logout/backchannel-logout`. It is
//! checked against the enabled provider whose issuer it names (its keys,
//! Federa's client id there, its clock skew), its `jti` is recorded once in
//! the session store (`bcl-jti:`, an atomic add, so a replay racing the
//! first use is refused), and every Federa session opened through that
//! upstream session (`sid`), or without one through that upstream subject
//! (`sub`), ends through [`Broker::end_session`].
//!
//! Sending (section 2.4, 2.7): when a Federa session ends, every client
//! that took part in it and has a `backchannel.logout.url` is sent a Logout
//! Token signed with the realm's key. Delivery runs in a task of its own,
//! never on the path of the request that ended the session: each attempt is
//! bounded, failures are retried with exponential backoff for a bounded
//! time, then logged. A delivery in flight is lost if the instance stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use federa_protocol::jwt::VerifierCache;
use federa_protocol::logout_token::{self, LogoutExpectations, LogoutToken, LogoutTokenError, LOGOUT_TOKEN_TYP};
use federa_protocol::IdTokenError;
use serde_json::Value;

use super::login::secs;
use super::sessions::UserSession;
use super::state::digest;
use super::upstream::Upstream;
use super::{now, random_token, Broker, RealmInfo};

/// The longest Logout Token read.
pub const MAX_LOGOUT_TOKEN: usize = 16 * 1024;
/// The oldest Logout Token accepted, by its `iat` (plus the provider's skew).
const MAX_TOKEN_AGE: i64 = 10 * 60;
/// How long Federa's own Logout Tokens are valid: enough for every retry.
const SENT_TOKEN_LIFETIME: i64 = 5 * 60;
/// One delivery attempt's limit.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait before the first retry; it doubles each time.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long a delivery keeps trying before it is given up (and logged).
const DELIVERY_WINDOW: Duration = Duration::from_secs(2 * 60);

/// Why a Logout Token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackchannelError {
    /// The request or token is not acceptable (HTTP 400, `invalid_request`).
    Invalid(String),
    /// Federa failed (logged).
    Internal,
}

fn invalid(realm: &str, why: impl Into<String>) -> BackchannelError {
    let why = why.into();
    log::warn!("realm {realm:?}: a back-channel logout was refused: {why}");
    BackchannelError::Invalid(why)
}

fn internal(e: impl std::fmt::Display) -> BackchannelError {
    log::error!("back-channel logout failed on an internal error: {e}");
    BackchannelError::Internal
}

/// The store key recording a Logout Token's `jti` at one provider.
fn jti_key(realm: &str, alias: &str, jti: &str) -> String {
    format!("bcl-jti:{realm}:{alias}:{}", digest(jti))
}

impl Broker {
    /// Receives a Logout Token (Back-Channel Logout 1.0 section 2.5) and
    /// ends the Federa sessions it names; returns how many ended.
    pub async fn backchannel_logout(&self, realm: &RealmInfo, token: &str) -> Result<usize, BackchannelError> {
        let r = realm.name.as_str();
        if token.is_empty() {
            return Err(invalid(r, "logout_token is missing"));
        }
        if token.len() > MAX_LOGOUT_TOKEN {
            return Err(invalid(r, format!("logout_token is longer than {MAX_LOGOUT_TOKEN} bytes")));
        }
        let iss = logout_token::peek_issuer(token)
            .ok_or_else(|| invalid(r, "logout_token is not a JWT naming its issuer"))?;
        let idps = self.idps(r).await.map_err(internal)?;
        let mut refused: Option<String> = None;
        let mut accepted: Option<(Upstream, LogoutToken)> = None;
        for idp in idps.iter().filter(|p| p.enabled && p.refusal.is_none()) {
            if idp.issuer.as_deref().is_some_and(|i| i != iss) {
                continue;
            }
            let up = match self.upstreams.resolve(&self.http, idp).await {
                Ok(up) => up,
                Err(e) => {
                    log::warn!("realm {r:?}: {e}");
                    continue;
                }
            };
            if up.issuer.as_deref() != Some(iss.as_str()) {
                continue;
            }
            match self.verify_logout_token(&up, token).await? {
                Ok(t) => {
                    accepted = Some((up, t));
                    break;
                }
                Err(e) => refused = Some(format!("identity provider {:?}: {e}", up.alias)),
            }
        }
        let (up, t) = match (accepted, refused) {
            (Some(found), _) => found,
            (None, Some(why)) => return Err(invalid(r, why)),
            (None, None) => {
                return Err(invalid(r, format!("no enabled identity provider of this realm has the issuer {iss:?}")))
            }
        };
        let ttl = Duration::from_secs((MAX_TOKEN_AGE + 2 * secs(up.clock_skew) + 60).unsigned_abs());
        let first = self.sessions.put_if_absent(&jti_key(r, &up.alias, &t.jti), "1", ttl).await.map_err(internal)?;
        if !first {
            return Err(invalid(
                r,
                format!("identity provider {:?}: this logout_token (jti) was already used", up.alias),
            ));
        }
        let sessions: Vec<UserSession> = match (&t.sid, &t.sub) {
            (Some(sid), sub) => self
                .sessions_by_upstream_sid(r, &up.alias, sid)
                .await
                .map_err(internal)?
                .into_iter()
                .filter(|s| sub.is_none() || s.sso.upstream_sub.as_ref() == sub.as_ref())
                .collect(),
            (None, Some(sub)) => self.sessions_by_upstream_sub(r, &up.alias, sub).await.map_err(internal)?,
            (None, None) => Vec::new(),
        };
        let mut ended = 0;
        for s in sessions {
            if self.end_session(r, &s.id).await.map_err(internal)? {
                ended += 1;
            }
        }
        log::info!("realm {r:?}: back-channel logout from {:?} ended {ended} session(s)", up.alias);
        Ok(ended)
    }

    /// Checks a Logout Token against one provider: its configured key, or
    /// its JWKS (fetched again once for an unknown kid).
    async fn verify_logout_token(
        &self,
        up: &Upstream,
        token: &str,
    ) -> Result<Result<LogoutToken, LogoutTokenError>, BackchannelError> {
        let issuer = up.issuer.clone().unwrap_or_default();
        if let Some(jwks) = &up.static_jwks {
            if let Some(kid) = &up.static_kid {
                let named = federa_protocol::id_token::peek_kid(token);
                if named.as_deref() != Some(kid.as_str()) {
                    let e = IdTokenError::UnknownKey(named);
                    return Ok(Err(e.into()));
                }
            }
            return verify_off_worker(token, jwks.clone(), issuer, up, self.upstreams.verifiers()).await;
        }
        let Some(url) = up.jwks_url.as_deref() else {
            return Ok(Err(LogoutTokenError::Claims("no jwksUrl is configured or discovered".into())));
        };
        let jwks = match self.upstreams.jwks(&self.http, url, false).await {
            Ok(j) => j,
            Err(e) => return Ok(Err(LogoutTokenError::Claims(e))),
        };
        let checked = verify_off_worker(token, jwks, issuer.clone(), up, self.upstreams.verifiers()).await?;
        match checked {
            Err(LogoutTokenError::Jwt(IdTokenError::UnknownKey(_))) => {
                let jwks = match self.upstreams.jwks(&self.http, url, true).await {
                    Ok(j) => j,
                    Err(e) => return Ok(Err(LogoutTokenError::Claims(e))),
                };
                verify_off_worker(token, jwks, issuer, up, self.upstreams.verifiers()).await
            }
            other => Ok(other),
        }
    }

    /// Sends the back-channel logouts of a session that has just ended, in
    /// a task of its own: the caller never waits for them.
    pub(crate) fn send_backchannel_logouts(&self, realm: &str, session: &UserSession) {
        if session.clients.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            log::warn!("realm {realm:?}: no runtime to send back-channel logouts on");
            return;
        };
        let (broker, realm, session) = (self.clone(), realm.to_owned(), session.clone());
        runtime.spawn(async move { broker.deliver_logouts(&realm, &session).await });
    }

    async fn deliver_logouts(&self, realm: &str, session: &UserSession) {
        let keys = match self.keys.get(self.store.as_ref(), realm).await {
            Ok(k) => k,
            Err(e) => {
                log::warn!("realm {realm:?}: back-channel logouts not sent: the realm's key cannot be read: {e}");
                return;
            }
        };
        let mut deliveries = Vec::new();
        for client_id in &session.clients {
            let client = match self.find_client(realm, client_id).await {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => {
                    log::warn!("realm {realm:?}: back-channel logout to {client_id:?} not sent: {e}");
                    continue;
                }
            };
            let Some(target) = client.backchannel_logout.clone().filter(|_| client.enabled) else { continue };
            let sid = target.session_required.then_some(session.id.as_str());
            let claims = logout_token::claims(
                &self.issuer(realm),
                client_id,
                &session.sso.user_id,
                sid,
                &random_token(),
                now(),
                SENT_TOKEN_LIFETIME,
            );
            let signer = keys.clone();
            let signed = tokio::task::spawn_blocking(move || signer.signer.sign(LOGOUT_TOKEN_TYP, &claims)).await;
            let token = match signed {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    log::warn!("realm {realm:?}: back-channel logout to {client_id:?} not signed: {e}");
                    continue;
                }
                Err(e) => {
                    log::warn!("realm {realm:?}: back-channel logout to {client_id:?} not signed: {e}");
                    continue;
                }
            };
            let (http, realm, client_id) = (self.http.clone(), realm.to_owned(), client_id.clone());
            deliveries.push(tokio::spawn(async move { deliver(&http, &realm, &client_id, &target.url, &token).await }));
        }
        for d in deliveries {
            let _ = d.await;
        }
    }
}

/// Posts one Logout Token (section 2.5), retrying failures with
/// exponential backoff within [`DELIVERY_WINDOW`]. A 4xx answer means the
/// client refused the token: retrying would not change that.
async fn deliver(http: &reqwest::Client, realm: &str, client_id: &str, url: &url::Url, token: &str) {
    let started = Instant::now();
    let mut wait = FIRST_RETRY;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let sent = http.post(url.clone()).timeout(ATTEMPT_TIMEOUT).form(&[("logout_token", token)]).send().await;
        let why = match sent {
            Ok(r) if r.status().is_success() => {
                log::info!("realm {realm:?}: back-channel logout delivered to {client_id:?}");
                return;
            }
            Ok(r) if r.status().is_client_error() => {
                log::warn!(
                    "realm {realm:?}: back-channel logout to {client_id:?} ({url}) refused with {}; not retried",
                    r.status()
                );
                return;
            }
            Ok(r) => format!("answered {}", r.status()),
            Err(e) if e.is_timeout() => format!("did not answer within {ATTEMPT_TIMEOUT:?}"),
            Err(e) => format!("cannot be reached: {e}"),
        };
        if started.elapsed() + wait > DELIVERY_WINDOW {
            log::warn!(
                "realm {realm:?}: back-channel logout to {client_id:?} ({url}) failed for good after {attempts} attempt(s): {why}"
            );
            return;
        }
        log::info!("realm {realm:?}: back-channel logout to {client_id:?} {why}; retrying in {wait:?}");
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2);
    }
}

/// Verifies a Logout Token on the blocking pool, with the provider's keys
/// parsed once (`verifiers`).
async fn verify_off_worker(
    token: &str,
    jwks: Value,
    issuer: String,
    up: &Upstream,
    verifiers: Arc<VerifierCache>,
) -> Result<Result<LogoutToken, LogoutTokenError>, BackchannelError> {
    let (token, client_id, skew) = (token.to_owned(), up.client_id.clone(), secs(up.clock_skew));
    tokio::task::spawn_blocking(move || {
        let exp = LogoutExpectations {
            issuer: &issuer,
            client_id: &client_id,
            allowed_algs: federa_protocol::id_token::DEFAULT_ALGS,
            now: now(),
            clock_skew: skew,
            max_age: MAX_TOKEN_AGE,
        };
        logout_token::verify_cached(&token, &jwks, &exp, &verifiers)
    })
    .await
    .map_err(internal)
}
