//! Refresh tokens (RFC 6749 sections 1.5, 6 and 10.4; RFC 9700 section
//! 4.14; OIDC Core sections 11 and 12).
//!
//! A refresh token is 32 random bytes, opaque to the client. The session
//! store keeps its [`RefreshGrant`] under `rt:{realm}:<sha256>` and, beside
//! it, a mark under `rtu:{realm}:<sha256>` naming its family. Every use takes
//! the grant (single use: of two racing uses one wins) and issues a new
//! token of the same family (rotation). A token whose grant is gone but whose
//! mark is live was used already: presenting it again revokes its family,
//! which is the record `rtf:{realm}:<family>` every refresh and access token
//! of the family needs alive (access tokens name it in
//! [`FAMILY_CLAIM`](super::state::FAMILY_CLAIM)); deleting it ends them all.
//!
//! A family is bound to its SSO session: it works while the session is live
//! and within the realm's `ssoSessionIdleTimeout` (a refresh counts as a use
//! of the session) and `ssoSessionMaxLifespan`, so ending the session ends
//! it. With `offline_access` (OIDC Core section 11) the family stands alone:
//! it lives `offlineSessionIdleTimeout` from its last refresh, until revoked
//! (and at most `offlineSessionMaxLifespan` from its start when the realm
//! enables it). Either way a refresh needs what the session came from to
//! hold (`check_ground`: provider, user, link).
//!
//! One refresh is two trips (`store::RefreshRedeemer`): the grant taken and
//! its family, session and user read (one transaction on the embedded
//! store; with Redis, a GETDEL then an MGET beside the user's read), then the
//! new token and the use written in one batch while the tokens are signed.
//! Between them, one database read: the user found through the link.
//! The code exchange writes the first token and its family inside its own
//! one trip (`store::Redemption::issue`).

use std::collections::BTreeMap;
use std::time::Duration;

use federa_protocol::OAuthErrorCode;

use super::login::secs;
use super::state::{self, CodeGrant, Family, RefreshGrant, SsoSession};
use super::token::{refuse, server_error, sign_pair, TokenError, TokenResponse, UserTokenClaims};
use super::{now, random_token, Broker, RealmInfo};
use crate::model::Client;
use crate::store::{Entry, EntryKind, RefreshUse};

pub use crate::model::client::OFFLINE_ACCESS;

/// Whether a value presented as a token can be a refresh token: Federa's are
/// base64url without dots, while its access and ID tokens are compact JWS.
pub(super) fn looks_like_refresh_token(token: &str) -> bool {
    !token.contains('.')
}

/// A duration of at least one second from a number of seconds.
fn seconds_left(s: i64) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0).max(1))
}

/// The realm's settings a refresh token's issue needs, captured for the
/// code redemption's one trip.
pub(super) struct Lifetimes {
    realm: String,
    sso_max: Duration,
    offline_idle: Duration,
    offline_max: Option<Duration>,
}

impl Lifetimes {
    /// The realm's.
    pub(super) fn of(realm: &RealmInfo) -> Self {
        Self {
            realm: realm.name.clone(),
            sso_max: realm.sso_max,
            offline_idle: realm.offline_idle,
            offline_max: realm.offline_max,
        }
    }

    /// How long a family (and a refresh token issued now) may live: an
    /// offline family its idle timeout (within what is left of its maximum
    /// lifetime from `family_started`, when the realm sets one), a session's
    /// family what is left of the session's maximum lifetime.
    fn ttl(&self, offline: bool, session: Option<&SsoSession>, family_started: i64, now: i64) -> Duration {
        if offline {
            return match self.offline_max {
                Some(max) => {
                    let left = seconds_left(family_started.saturating_add(secs(max)).saturating_sub(now));
                    self.offline_idle.min(left)
                }
                None => self.offline_idle,
            };
        }
        let started = session.map_or(now, SsoSession::started);
        seconds_left(started.saturating_add(secs(self.sso_max)).saturating_sub(now))
    }
}

/// What the authorization_code grant writes with the code's redemption
/// (given the code's grant and its live session): a refresh token `token`
/// starting the family `family`, bound to the session unless
/// `offline_access` was granted (OIDC Core section 11). Nothing when the
/// grant cannot be read (the exchange then fails).
pub(super) fn issue(l: &Lifetimes, family: &str, token: &str, grant: &str, session: &str, now: i64) -> Vec<Entry> {
    let Ok(code) = serde_json::from_str::<CodeGrant>(grant) else { return Vec::new() };
    let session = serde_json::from_str::<SsoSession>(session).ok();
    let offline = code.scopes.iter().any(|s| s == OFFLINE_ACCESS);
    let ttl = l.ttl(offline, session.as_ref(), now, now);
    let record = Family {
        client_id: code.client_id.clone(),
        user_id: code.user_id.clone(),
        sid: code.sid.clone(),
        offline,
        started: now,
        last_use: now,
    };
    let grant = RefreshGrant {
        family: family.to_owned(),
        client_id: code.client_id,
        user_id: code.user_id,
        sid: code.sid,
        scopes: code.scopes,
        auth_time: code.auth_time,
        offline,
        started: now,
        // An offline family outlives its session: what the session came
        // from is kept for the check of each refresh (`lost_ground`).
        origin: session.filter(|_| offline).map(|s| SsoSession {
            ip_address: String::new(),
            upstream_id_token: None,
            ..s
        }),
    };
    let (Ok(grant_json), Ok(family_json)) = (serde_json::to_string(&grant), serde_json::to_string(&record)) else {
        return Vec::new();
    };
    let mut entries = token_entries(&l.realm, token, grant_json, family, ttl);
    entries.push(Entry { key: state::family_key(&l.realm, family), value: family_json, ttl, kind: EntryKind::Value });
    entries
}

/// The entries that issue a refresh token: its grant and its use mark.
fn token_entries(realm: &str, token: &str, grant_json: String, family: &str, ttl: Duration) -> Vec<Entry> {
    vec![
        Entry { key: state::refresh_key(realm, token), value: grant_json, ttl, kind: EntryKind::Value },
        Entry { key: state::refresh_used_key(realm, token), value: family.to_owned(), ttl, kind: EntryKind::Value },
    ]
}

/// When a grant's tokens stop being usable, when they are usable at `now`:
/// its family must be live and its own, and then an offline family within
/// its idle timeout, any other within its session's limits.
fn usable_until(
    realm: &RealmInfo,
    grant: &RefreshGrant,
    family: Option<&Family>,
    session: Option<&SsoSession>,
    now: i64,
) -> Option<i64> {
    let family = family.filter(|f| f.client_id == grant.client_id && f.user_id == grant.user_id)?;
    let until = if family.offline {
        let idle_end = family.last_use.saturating_add(secs(realm.offline_idle));
        match realm.offline_max {
            Some(max) => idle_end.min(family.started.saturating_add(secs(max))),
            None => idle_end,
        }
    } else {
        let s = session.filter(|s| s.user_id == grant.user_id && realm.session_serves(s, now))?;
        let idle_end = s.last_access().saturating_add(secs(realm.sso_idle));
        idle_end.min(s.started().saturating_add(secs(realm.sso_max)))
    };
    (until >= now).then_some(until)
}

/// The scopes of the new access token: the request's `scope`, which may
/// narrow the grant's but never widen it (RFC 6749 section 6), or the
/// grant's.
fn narrowed(granted: &[String], requested: Option<&String>) -> Result<Vec<String>, TokenError> {
    let Some(requested) = requested else { return Ok(granted.to_vec()) };
    let mut out: Vec<String> = Vec::new();
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if !granted.iter().any(|g| g == s) {
            return Err(refuse(OAuthErrorCode::InvalidScope, &format!("scope {s:?} was not granted")));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    if out.is_empty() {
        return Ok(granted.to_vec());
    }
    Ok(out)
}

fn invalid_grant() -> TokenError {
    refuse(OAuthErrorCode::InvalidGrant, "the refresh token is invalid, expired, revoked or already used")
}

fn parse<T: serde::de::DeserializeOwned>(value: Option<&Option<String>>) -> Option<T> {
    value.and_then(Option::as_deref).and_then(|v| serde_json::from_str(v).ok())
}

/// A live refresh token's grant and when it stops being usable.
pub(super) struct LiveRefresh {
    /// The grant.
    pub grant: RefreshGrant,
    /// Seconds since the epoch.
    pub exp: i64,
}

impl Broker {
    /// The refresh_token grant (RFC 6749 section 6): the token is rotated
    /// (RFC 9700 section 4.14.2), and the answer carries a new access token,
    /// an ID token with the session's `sid` and `auth_time` and no nonce
    /// (OIDC Core section 12.2), and the new refresh token.
    pub(super) async fn refresh_token_grant(
        &self,
        realm: &RealmInfo,
        client: &Client,
        form: &BTreeMap<String, String>,
    ) -> Result<TokenResponse, TokenError> {
        let presented = form
            .get("refresh_token")
            .map(String::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| refuse(OAuthErrorCode::InvalidRequest, "refresh_token is required"))?;
        let client_id = client.client_id.as_str();
        let refresh_key = state::refresh_key(&realm.name, presented);
        // A narrowing scope is checked before the token is used, so that a
        // refused scope leaves the token usable (a rare, extra read).
        if let Some(requested) = form.get("scope") {
            let stored = self.sessions.get(&refresh_key).await.map_err(server_error)?;
            if let Some(grant) = stored.and_then(|g| serde_json::from_str::<RefreshGrant>(&g).ok()) {
                if grant.client_id == client_id {
                    narrowed(&grant.scopes, Some(requested))?;
                }
            }
        }
        // One trip: the grant taken (of two racing uses, one gets it), its
        // family, session and user read.
        let used = self
            .refresh_redeemer
            .use_refresh(RefreshUse {
                realm: realm.name.clone(),
                token_key: refresh_key,
                used_key: state::refresh_used_key(&realm.name, presented),
                refs: state::refresh_refs,
            })
            .await
            .map_err(server_error)?;
        let Some(taken) = used.grant else {
            // Unknown, expired, revoked, or used already. A used one (its
            // mark still live) was stolen or replayed: its family ends.
            if let Some(family) = used.mark {
                self.revoke_family(realm, &family).await?;
                log::warn!(
                    "realm {:?}: a used refresh token was presented again (by client {client_id:?}); its family is revoked",
                    realm.name
                );
            }
            return Err(invalid_grant());
        };
        let grant: RefreshGrant = serde_json::from_str(&taken).map_err(server_error)?;
        if grant.client_id != client_id {
            // Another client holds it: it leaked, and its family ends.
            self.revoke_family(realm, &grant.family).await?;
            log::warn!(
                "realm {:?}: client {client_id:?} presented a refresh token of client {:?}; its family is revoked",
                realm.name,
                grant.client_id
            );
            return Err(refuse(OAuthErrorCode::InvalidGrant, "the refresh token was issued to another client"));
        }
        let scopes = narrowed(&grant.scopes, form.get("scope"))?;
        let family: Option<Family> = parse(used.found.first());
        let session: Option<SsoSession> = parse(used.found.get(1));
        let now = now();
        if usable_until(realm, &grant, family.as_ref(), session.as_ref(), now).is_none() {
            return Err(invalid_grant());
        }
        let user = used
            .user
            .filter(|u| u.enabled != Some(false))
            .ok_or_else(|| refuse(OAuthErrorCode::InvalidGrant, "the user no longer exists or is disabled"))?;
        self.check_ground(realm, &grant, session.as_ref()).await?;

        // Rotation: a new token of the same family, with the grant's scopes,
        // written in one trip with the use: a session's family counts as a
        // use of the session (ssoSessionIdleTimeout), an offline family's
        // idle time restarts. Both only replace live records, so a session
        // ended or a family revoked meanwhile stays so, and then what is
        // written and signed here is dead already (the access-token check
        // and the next refresh need both).
        let token = random_token();
        let lifetimes = Lifetimes::of(realm);
        let ttl = lifetimes.ttl(grant.offline, session.as_ref(), grant.started, now);
        let grant_json = serde_json::to_string(&grant).map_err(server_error)?;
        let mut entries = token_entries(&realm.name, &token, grant_json, &grant.family, ttl);
        let touch = match (family, session) {
            (Some(mut f), _) if f.offline => {
                f.last_use = now;
                let value = serde_json::to_string(&f).map_err(server_error)?;
                let key = state::family_key(&realm.name, &grant.family);
                Entry { key, value, ttl, kind: EntryKind::Renew }
            }
            (_, Some(mut s)) => {
                s.last_access = now;
                let value = serde_json::to_string(&s).map_err(server_error)?;
                let key = state::sso_key_public(&realm.name, &grant.sid);
                Entry { key, value, ttl, kind: EntryKind::Replace }
            }
            _ => return Err(invalid_grant()),
        };
        entries.push(touch);

        let keys = self.keys.get(self.store.as_ref(), &realm.name).await.map_err(server_error)?;
        let lifespan = secs(realm.token_lifespan);
        let scope = scopes.join(" ");
        let jti = random_token();
        let (access, id) = UserTokenClaims {
            realm,
            client,
            user: &user,
            user_id: &grant.user_id,
            scopes: &scopes,
            sid: &grant.sid,
            auth_time: grant.auth_time,
            family: &grant.family,
            jti: &jti,
            now,
        }
        .build();
        let (signed, written) = tokio::join!(sign_pair(keys, access, id), self.sessions.put_many(entries));
        written.map_err(server_error)?;
        let (access_token, id_token) = signed?;
        Ok(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: lifespan,
            // OIDC Core section 12.2: an ID token only for an OpenID grant.
            id_token: scopes.iter().any(|s| s == "openid").then_some(id_token),
            refresh_token: Some(token),
            scope,
        })
    }

    /// A refresh answers only while what the family came from still holds,
    /// as an SSO session's reuse at the authorization endpoint does
    /// (`session_lost_ground`): its provider enabled and not link-only, its
    /// user enabled and still linked to it. A session's family is checked
    /// through its live session, an offline one through the session it
    /// started from ([`RefreshGrant::origin`]; none in grants written
    /// before it was kept, which go unchecked). One database read. On
    /// failure the family is revoked and a session's family's session
    /// ended.
    async fn check_ground(
        &self,
        realm: &RealmInfo,
        grant: &RefreshGrant,
        session: Option<&SsoSession>,
    ) -> Result<(), TokenError> {
        let Some(origin) = (if grant.offline { grant.origin.as_ref() } else { session }) else {
            return Ok(());
        };
        let idps = self.idps(&realm.name).await.map_err(server_error)?;
        let lost = self
            .session_lost_ground(&realm.name, origin, &idps)
            .await
            .map_err(|_| server_error("the refresh token's session could not be checked"))?;
        let Some(why) = lost else { return Ok(()) };
        log::info!("realm {:?}: a refresh token's family is revoked: {why}", realm.name);
        self.revoke_family(realm, &grant.family).await?;
        if !grant.offline {
            self.end_session(&realm.name, &grant.sid).await.map_err(server_error)?;
        }
        Err(invalid_grant())
    }

    /// Revokes a refresh-token family: its refresh tokens and the access
    /// tokens they produced (all need the family record) stop working.
    pub(super) async fn revoke_family(&self, realm: &RealmInfo, family: &str) -> Result<(), TokenError> {
        self.sessions.delete(&state::family_key(&realm.name, family)).await.map_err(server_error)
    }

    /// A refresh token's grant, when the token is live and usable now
    /// (introspection and revocation; nothing is consumed).
    pub(super) async fn live_refresh_token(
        &self,
        realm: &RealmInfo,
        token: &str,
    ) -> Result<Option<LiveRefresh>, TokenError> {
        let stored = self.sessions.get(&state::refresh_key(&realm.name, token)).await.map_err(server_error)?;
        let Some(grant) = stored.and_then(|g| serde_json::from_str::<RefreshGrant>(&g).ok()) else {
            return Ok(None);
        };
        let keys = [state::family_key(&realm.name, &grant.family), state::sso_key_public(&realm.name, &grant.sid)];
        let found = self.sessions.get_many(&keys).await.map_err(server_error)?;
        let (family, session): (Option<Family>, Option<SsoSession>) = (parse(found.first()), parse(found.get(1)));
        Ok(usable_until(realm, &grant, family.as_ref(), session.as_ref(), now()).map(|exp| LiveRefresh { grant, exp }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realm() -> RealmInfo {
        RealmInfo {
            name: "r".into(),
            display_name: "r".into(),
            login_theme: None,
            locale: None,
            issuer: "https://op/realms/r".into(),
            token_lifespan: Duration::from_secs(300),
            sso_max: Duration::from_secs(1000),
            sso_idle: Duration::from_secs(100),
            offline_idle: Duration::from_secs(5000),
            offline_max: None,
        }
    }

    fn grant(offline: bool) -> RefreshGrant {
        RefreshGrant {
            family: "f".into(),
            client_id: "app".into(),
            user_id: "u".into(),
            sid: "s".into(),
            scopes: vec!["openid".into(), "profile".into()],
            auth_time: 10,
            offline,
            started: 10,
            origin: None,
        }
    }

    fn family(offline: bool, last_use: i64) -> Family {
        Family { client_id: "app".into(), user_id: "u".into(), sid: "s".into(), offline, started: 10, last_use }
    }

    fn session(started: i64, last_access: i64) -> SsoSession {
        SsoSession {
            user_id: "u".into(),
            auth_time: started,
            idp: "node".into(),
            upstream_sid: None,
            upstream_sub: None,
            link_sub: None,
            started,
            last_access,
            ip_address: String::new(),
            upstream_id_token: None,
        }
    }

    #[test]
    fn a_scope_narrows_and_never_widens() {
        let granted = grant(false).scopes;
        assert_eq!(narrowed(&granted, None).unwrap(), granted);
        assert_eq!(narrowed(&granted, Some(&"openid".to_owned())).unwrap(), vec!["openid".to_owned()]);
        assert_eq!(narrowed(&granted, Some(&" ".to_owned())).unwrap(), granted);
        let err = narrowed(&granted, Some(&"openid email".to_owned())).unwrap_err();
        assert_eq!(err.error.error, OAuthErrorCode::InvalidScope);
    }

    #[test]
    fn a_session_family_lives_with_its_session_within_idle_and_max() {
        let r = realm();
        let g = grant(false);
        let f = family(false, 10);
        assert_eq!(usable_until(&r, &g, Some(&f), Some(&session(10, 50)), 60), Some(150));
        assert_eq!(usable_until(&r, &g, Some(&f), Some(&session(10, 950)), 960), Some(1010));
        assert_eq!(usable_until(&r, &g, Some(&f), Some(&session(10, 50)), 151), None, "idle");
        assert_eq!(usable_until(&r, &g, Some(&f), Some(&session(10, 1000)), 1011), None, "max");
        assert_eq!(usable_until(&r, &g, Some(&f), None, 60), None, "session ended");
        assert_eq!(usable_until(&r, &g, None, Some(&session(10, 50)), 60), None, "family revoked");
    }

    #[test]
    fn an_offline_family_outlives_its_session_until_idle() {
        let r = realm();
        let g = grant(true);
        assert_eq!(usable_until(&r, &g, Some(&family(true, 100)), None, 2000), Some(5100));
        assert_eq!(usable_until(&r, &g, Some(&family(true, 100)), None, 5101), None);
        assert_eq!(usable_until(&r, &g, None, None, 200), None);
        let r = RealmInfo { offline_max: Some(Duration::from_secs(3000)), ..realm() };
        assert_eq!(usable_until(&r, &g, Some(&family(true, 100)), None, 2000), Some(3010), "offline maximum");
        assert_eq!(usable_until(&r, &g, Some(&family(true, 2900)), None, 3011), None, "past the maximum");
    }

    #[test]
    fn an_offline_family_lives_no_longer_than_its_maximum() {
        let mut r = realm();
        assert_eq!(Lifetimes::of(&r).ttl(true, None, 10, 100), Duration::from_secs(5000));
        r.offline_max = Some(Duration::from_secs(3000));
        assert_eq!(Lifetimes::of(&r).ttl(true, None, 10, 100), Duration::from_secs(2910));
        assert_eq!(Lifetimes::of(&r).ttl(true, None, 10, 5000), Duration::from_secs(1));
    }

    #[test]
    fn refresh_tokens_are_told_from_jwts() {
        assert!(looks_like_refresh_token(&random_token()));
        assert!(!looks_like_refresh_token("a.b.c"));
    }
}
