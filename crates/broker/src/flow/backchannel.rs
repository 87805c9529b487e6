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
//! Token signed with the realm's key. Each delivery is first written to an
//! outbox in the session store (`bcl-out:{realm}:{id}`, listed in the
//! `bcl-outbox` index), then tried in a task of its own, never on the path
//! of the request that ended the session. Each attempt is bounded and held
//! under a lease (`bcl-lease:`) so that no two instances make it at once;
//! failures are retried with exponential backoff for a bounded time, then
//! logged. The instance that ended the session retries while it runs; every
//! instance's periodic sweep of the outbox retries what is due, so a
//! delivery survives the instance that queued it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use federa_protocol::jwt::VerifierCache;
use federa_protocol::logout_token::{self, LogoutExpectations, LogoutToken, LogoutTokenError, LOGOUT_TOKEN_TYP};
use federa_protocol::IdTokenError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::login::secs;
use super::sessions::UserSession;
use super::state::digest;
use super::upstream::Upstream;
use super::{now, random_token, Broker, RealmInfo};
use crate::store::{Entry, EntryKind};

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
            match self.verify_logout_token(&up, realm, token).await? {
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

    /// Checks a Logout Token against one provider: its configured key (and
    /// key id), or its JWKS, fetched again once for an unknown kid
    /// ([`Broker::with_upstream_keys`], on the blocking pool). A Logout
    /// Token's signature is always checked, whatever `validateSignature`.
    async fn verify_logout_token(
        &self,
        up: &Upstream,
        realm: &RealmInfo,
        token: &str,
    ) -> Result<Result<LogoutToken, LogoutTokenError>, BackchannelError> {
        if let (Some(kid), Some(_)) = (&up.static_kid, &up.static_jwks) {
            let named = federa_protocol::id_token::peek_kid(token);
            if named.as_deref() != Some(kid.as_str()) {
                return Ok(Err(IdTokenError::UnknownKey(named).into()));
            }
        }
        let (token, issuer) = (token.to_owned(), up.issuer.clone().unwrap_or_default());
        let (client_id, skew) = (up.client_id.clone(), secs(up.clock_skew));
        let check = move |jwks: &Value, verifiers: &VerifierCache| {
            let exp = LogoutExpectations {
                issuer: &issuer,
                client_id: &client_id,
                allowed_algs: federa_protocol::id_token::DEFAULT_ALGS,
                now: now(),
                clock_skew: skew,
                max_age: MAX_TOKEN_AGE,
            };
            // An unknown kid goes back out as such, for the one refetch.
            match logout_token::verify_cached(&token, jwks, &exp, verifiers) {
                Err(LogoutTokenError::Jwt(e @ IdTokenError::UnknownKey(_))) => Err(e),
                other => Ok(other),
            }
        };
        if !up.validate_signature && up.static_jwks.is_none() {
            return self.verify_unvalidated(up, check).await;
        }
        Ok(match self.with_upstream_keys(up, realm, check).await {
            Ok(Ok(checked)) => checked,
            Ok(Err(e)) => Err(e.into()),
            // The key set cannot be read (logged there).
            Err(_) => Err(LogoutTokenError::Claims("the provider's key set cannot be read".into())),
        })
    }

    /// [`Broker::verify_logout_token`] for a provider with
    /// `validateSignature` off, whose ID tokens are trusted on the TLS
    /// connection to its token endpoint: `with_upstream_keys` then reads no
    /// keys, but a Logout Token comes from anyone, so its JWKS is read here
    /// (again once for an unknown kid) and the signature checked all the same.
    async fn verify_unvalidated(
        &self,
        up: &Upstream,
        check: impl Fn(&Value, &VerifierCache) -> Result<Result<LogoutToken, LogoutTokenError>, IdTokenError>
            + Send
            + Sync
            + 'static,
    ) -> Result<Result<LogoutToken, LogoutTokenError>, BackchannelError> {
        let Some(url) = up.jwks_url.as_deref() else {
            return Ok(Err(LogoutTokenError::Claims("no jwksUrl is configured or discovered".into())));
        };
        let check = Arc::new(check);
        for refetch in [false, true] {
            let jwks = match self.upstreams.jwks(&self.http, url, refetch).await {
                Ok(j) => j,
                Err(e) => return Ok(Err(LogoutTokenError::Claims(e))),
            };
            let (check, verifiers) = (check.clone(), self.upstreams.verifiers());
            match tokio::task::spawn_blocking(move || check(&jwks, &verifiers)).await.map_err(internal)? {
                Err(e) if refetch => return Ok(Err(e.into())),
                Err(_) => continue,
                Ok(checked) => return Ok(checked),
            }
        }
        Err(BackchannelError::Internal)
    }

    /// Queues the back-channel logouts of a session that has just ended:
    /// each one is signed and written to the outbox in the session store
    /// (one write), then tried at once in a task of its own; the caller
    /// never waits for a delivery. What that task does not deliver, any
    /// instance's sweep ([`Broker::sweep_backchannel_outbox`]) does.
    pub(crate) async fn send_backchannel_logouts(&self, realm: &str, session: &UserSession) {
        if session.clients.is_empty() {
            return;
        }
        let mut queued = Vec::new();
        let mut entries = Vec::new();
        let mut keys = None;
        let now = now_ms();
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
            let keys = match &keys {
                Some(k) => k,
                None => match self.keys.get(self.store.as_ref(), realm).await {
                    Ok(k) => keys.insert(k),
                    Err(e) => {
                        log::warn!(
                            "realm {realm:?}: back-channel logouts not sent: the realm's key cannot be read: {e}"
                        );
                        return;
                    }
                },
            };
            let sid = target.session_required.then_some(session.id.as_str());
            let claims = logout_token::claims(
                &self.issuer(realm),
                client_id,
                &session.sso.user_id,
                sid,
                &random_token(),
                now / 1000,
                SENT_TOKEN_LIFETIME,
            );
            let signer = keys.clone();
            let token = match tokio::task::spawn_blocking(move || signer.signer.sign(LOGOUT_TOKEN_TYP, &claims)).await {
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
            let delivery = Delivery {
                client_id: client_id.clone(),
                url: target.url.to_string(),
                logout_token: token,
                attempt: 0,
                next_at: now,
                deadline: now + DELIVERY_WINDOW.as_millis() as i64,
            };
            let member = format!("{realm}:{}", random_token());
            let Ok(json) = serde_json::to_string(&delivery) else { continue };
            entries.push(Entry { key: outbox_key(&member), value: json, ttl: ENTRY_TTL, kind: EntryKind::Value });
            entries.push(Entry {
                key: OUTBOX_INDEX.to_owned(),
                value: member.clone(),
                ttl: ENTRY_TTL,
                kind: EntryKind::IndexMember,
            });
            queued.push((member, delivery));
        }
        if queued.is_empty() {
            return;
        }
        let durable = match self.sessions.put_many(entries).await {
            Ok(()) => true,
            Err(e) => {
                log::warn!(
                    "realm {realm:?}: back-channel logouts not written to the outbox ({e}); tried from memory only"
                );
                false
            }
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            log::warn!("realm {realm:?}: no runtime to send back-channel logouts on");
            return;
        };
        for (member, delivery) in queued {
            let broker = self.clone();
            runtime.spawn(async move {
                if durable {
                    broker.deliver_from_outbox(&member).await;
                } else {
                    let (realm, _) = split_member(&member);
                    let url = delivery.url.clone();
                    deliver_in_memory(&broker.http, realm, &delivery.client_id, &url, &delivery.logout_token).await;
                }
            });
        }
    }

    /// The first delivery of an outbox entry, from the instance that ended
    /// the session: an attempt at once, then the retries at their time, as
    /// long as this instance runs (a sweep anywhere takes over otherwise).
    async fn deliver_from_outbox(&self, member: &str) {
        let started = Instant::now();
        loop {
            match self.attempt(member).await {
                Attempted::Delivered | Attempted::Finished => return,
                // The sweeps go on with it.
                Attempted::Later(_) if started.elapsed() > ENTRY_TTL => return,
                Attempted::Later(next_at) => {
                    let wait = (next_at - now_ms()).max(100);
                    tokio::time::sleep(Duration::from_millis(wait.unsigned_abs())).await;
                }
            }
        }
    }

    /// Runs one sweep of the back-channel logout outbox: every entry that
    /// is due and not being tried elsewhere is tried now (all at once);
    /// answers how many were delivered. [`Broker::spawn_backchannel_sweeper`]
    /// runs it periodically.
    pub async fn sweep_backchannel_outbox(&self) -> usize {
        let members = match self.sessions.index_members(OUTBOX_INDEX).await {
            Ok(m) => m,
            Err(e) => {
                log::warn!("the back-channel logout outbox cannot be read: {e}");
                return 0;
            }
        };
        if members.is_empty() {
            return 0;
        }
        let keys: Vec<String> = members.iter().map(|m| outbox_key(m)).collect();
        let values = match self.sessions.get_many(&keys).await {
            Ok(v) => v,
            Err(e) => {
                log::warn!("the back-channel logout outbox cannot be read: {e}");
                return 0;
            }
        };
        let now = now_ms();
        let mut tries = tokio::task::JoinSet::new();
        for (member, value) in members.into_iter().zip(values) {
            match value.as_deref().map(serde_json::from_str::<Delivery>) {
                Some(Ok(d)) if d.next_at > now => {}
                Some(Ok(_)) => {
                    let broker = self.clone();
                    tries.spawn(async move { broker.attempt(&member).await });
                }
                // Gone (delivered, or expired) or unreadable: the member goes.
                _ => {
                    let _ = self.sessions.index_remove(OUTBOX_INDEX, &member).await;
                    if value.is_some() {
                        let _ = self.sessions.delete(&outbox_key(&member)).await;
                    }
                }
            }
        }
        let mut delivered = 0;
        while let Some(done) = tries.join_next().await {
            if let Ok(Attempted::Delivered) = done {
                delivered += 1;
            }
        }
        delivered
    }

    /// One attempt at an outbox entry, under its lease so that no other
    /// instance tries it at the same time: `Delivered`, `Finished` when
    /// refused, given up or already gone; `Later` with the time it is due
    /// again (after a failure here, or when another instance holds it).
    async fn attempt(&self, member: &str) -> Attempted {
        let (key, lease) = (outbox_key(member), lease_key(member));
        match self.sessions.put_if_absent(&lease, "1", LEASE_TTL).await {
            Ok(true) => {}
            Ok(false) => return Attempted::Later(now_ms() + LEASE_TTL.as_millis() as i64),
            Err(e) => {
                log::warn!("back-channel logout outbox: the lease cannot be taken: {e}");
                return Attempted::Later(now_ms() + LEASE_TTL.as_millis() as i64);
            }
        }
        // Read again under the lease: another instance may have delivered
        // it, or tried it, since it was listed.
        let outcome = match self.sessions.get(&key).await {
            Ok(Some(json)) => match serde_json::from_str::<Delivery>(&json) {
                Ok(d) if d.next_at > now_ms() => Attempted::Later(d.next_at),
                Ok(d) => self.attempt_leased(member, d).await,
                Err(e) => {
                    log::warn!("back-channel logout outbox: an unreadable entry is dropped: {e}");
                    self.forget(member).await;
                    Attempted::Finished
                }
            },
            Ok(None) => {
                let _ = self.sessions.index_remove(OUTBOX_INDEX, member).await;
                Attempted::Finished
            }
            Err(e) => {
                log::warn!("back-channel logout outbox: an entry cannot be read: {e}");
                Attempted::Later(now_ms() + LEASE_TTL.as_millis() as i64)
            }
        };
        // Released only once the outcome is written, so whoever takes the
        // lease next reads it.
        let _ = self.sessions.delete(&lease).await;
        outcome
    }

    async fn attempt_leased(&self, member: &str, mut d: Delivery) -> Attempted {
        let (realm, _) = split_member(member);
        let client_id = d.client_id.as_str();
        if now_ms() > d.deadline {
            log::warn!(
                "realm {realm:?}: back-channel logout to {client_id:?} ({}) failed for good after {} attempt(s)",
                d.url,
                d.attempt
            );
            self.forget(member).await;
            return Attempted::Finished;
        }
        d.attempt += 1;
        let why = match post_logout_token(&self.http, &d.url, &d.logout_token).await {
            Posted::Delivered => {
                log::info!("realm {realm:?}: back-channel logout delivered to {client_id:?}");
                self.forget(member).await;
                return Attempted::Delivered;
            }
            Posted::Refused(status) => {
                log::warn!(
                    "realm {realm:?}: back-channel logout to {client_id:?} ({}) refused with {status}; not retried",
                    d.url
                );
                self.forget(member).await;
                return Attempted::Finished;
            }
            Posted::Failed(why) => why,
        };
        let wait = FIRST_RETRY.saturating_mul(1u32 << (d.attempt - 1).min(16));
        d.next_at = now_ms() + wait.as_millis() as i64;
        if d.next_at > d.deadline {
            log::warn!(
                "realm {realm:?}: back-channel logout to {client_id:?} ({}) failed for good after {} attempt(s): {why}",
                d.url,
                d.attempt
            );
            self.forget(member).await;
            return Attempted::Finished;
        }
        log::info!("realm {realm:?}: back-channel logout to {client_id:?} {why}; retrying in {wait:?}");
        let written = match serde_json::to_string(&d) {
            Ok(json) => self.sessions.replace(&outbox_key(member), &json).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match written {
            Ok(true) => Attempted::Later(d.next_at),
            Ok(false) => Attempted::Finished,
            Err(e) => {
                log::warn!("realm {realm:?}: back-channel logout to {client_id:?}: the retry cannot be recorded: {e}");
                Attempted::Later(d.next_at)
            }
        }
    }

    /// Removes an outbox entry and its index member.
    async fn forget(&self, member: &str) {
        if let Err(e) = self.sessions.delete(&outbox_key(member)).await {
            log::warn!("back-channel logout outbox: an entry cannot be removed: {e}");
        }
        let _ = self.sessions.index_remove(OUTBOX_INDEX, member).await;
    }
}

/// A back-channel logout waiting in the outbox (`bcl-out:{realm}:{id}`).
/// Times are milliseconds since the epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Delivery {
    client_id: String,
    url: String,
    logout_token: String,
    /// Attempts made so far.
    attempt: u32,
    /// When the next attempt is due.
    next_at: i64,
    /// When it is given up.
    deadline: i64,
}

/// What [`Broker::attempt`] came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempted {
    /// Delivered by this attempt.
    Delivered,
    /// Nothing more to do: refused, given up, or already gone.
    Finished,
    /// Due again at this time.
    Later(i64),
}

/// What one POST came to.
enum Posted {
    Delivered,
    Refused(reqwest::StatusCode),
    Failed(String),
}

/// The index of the outbox: its members are `{realm}:{id}`.
const OUTBOX_INDEX: &str = "bcl-outbox";
/// How long an outbox entry (and its index member) lives: the delivery
/// window, and time for a sweep to log that it was given up.
const ENTRY_TTL: Duration = Duration::from_secs(DELIVERY_WINDOW.as_secs() + 60);
/// How long an instance holds an entry it is trying: above one attempt.
const LEASE_TTL: Duration = Duration::from_secs(ATTEMPT_TIMEOUT.as_secs() + 5);
/// How often `federa serve` sweeps the outbox.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);

fn outbox_key(member: &str) -> String {
    format!("bcl-out:{member}")
}

fn lease_key(member: &str) -> String {
    format!("bcl-lease:{member}")
}

/// `(realm, id)` of an index member (the id, a random token, has no `:`).
fn split_member(member: &str) -> (&str, &str) {
    member.rsplit_once(':').unwrap_or((member, ""))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

/// Posts one Logout Token (section 2.5). A 4xx answer means the client
/// refused the token: retrying would not change that.
async fn post_logout_token(http: &reqwest::Client, url: &str, token: &str) -> Posted {
    match http.post(url).timeout(ATTEMPT_TIMEOUT).form(&[("logout_token", token)]).send().await {
        Ok(r) if r.status().is_success() => Posted::Delivered,
        Ok(r) if r.status().is_client_error() => Posted::Refused(r.status()),
        Ok(r) => Posted::Failed(format!("answered {}", r.status())),
        Err(e) if e.is_timeout() => Posted::Failed(format!("did not answer within {ATTEMPT_TIMEOUT:?}")),
        Err(e) => Posted::Failed(format!("cannot be reached: {}", e.without_url())),
    }
}

/// Posts one Logout Token from memory only (when the outbox cannot be
/// written), retrying failures with exponential backoff within
/// [`DELIVERY_WINDOW`].
async fn deliver_in_memory(http: &reqwest::Client, realm: &str, client_id: &str, url: &str, token: &str) {
    let started = Instant::now();
    let mut wait = FIRST_RETRY;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let why = match post_logout_token(http, url, token).await {
            Posted::Delivered => {
                log::info!("realm {realm:?}: back-channel logout delivered to {client_id:?}");
                return;
            }
            Posted::Refused(status) => {
                log::warn!(
                    "realm {realm:?}: back-channel logout to {client_id:?} ({url}) refused with {status}; not retried"
                );
                return;
            }
            Posted::Failed(why) => why,
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
