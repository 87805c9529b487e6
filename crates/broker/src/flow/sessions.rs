//! SSO sessions as records that logout can find: by their public id (the
//! `sso:` entry), by user, by the upstream's `sid` and by its `sub`, through
//! secondary indexes in the session store (`SessionStore::index_*`). An index
//! member may outlive its session; readers drop members whose `sso:` entry
//! is gone. [`Broker::end_session`] is the one place a session ends, and
//! where back-channel logouts to the session's clients are sent from.

use std::time::Duration;

use super::state::{self, SsoSession};
use super::Broker;
use crate::store::{Entry, EntryKind};
use crate::StoreError;

/// The index of a user's sessions.
pub fn user_index(realm: &str, user_id: &str) -> String {
    format!("sso-user:{realm}:{user_id}")
}

/// The index of the sessions an upstream session (its `sid`) opened.
pub fn upstream_sid_index(realm: &str, alias: &str, upstream_sid: &str) -> String {
    format!("sso-up-sid:{realm}:{alias}:{upstream_sid}")
}

/// The index of the sessions of an upstream subject.
pub fn upstream_sub_index(realm: &str, alias: &str, upstream_sub: &str) -> String {
    format!("sso-up-sub:{realm}:{alias}:{upstream_sub}")
}

/// The set of clients that received tokens from a session (a set, so that
/// concurrent token requests never lose one).
pub fn clients_index(realm: &str, public_sid: &str) -> String {
    format!("sso-clients:{realm}:{public_sid}")
}

/// A new session through the provider `alias`, whose verified ID token
/// names the upstream session (`sid`, optional) and subject; its user is
/// filled in once known.
pub fn opened(
    alias: &str,
    id_token: &federa_protocol::VerifiedIdToken,
    auth_time: i64,
    now: i64,
    ip_address: &str,
) -> SsoSession {
    SsoSession {
        user_id: String::new(),
        auth_time,
        idp: alias.to_owned(),
        upstream_sid: id_token.claims().get("sid").and_then(serde_json::Value::as_str).map(str::to_owned),
        upstream_sub: Some(id_token.subject().to_owned()),
        link_sub: None,
        started: now,
        last_access: 0,
        ip_address: ip_address.to_owned(),
        upstream_id_token: None,
    }
}

/// The index members of a new session (by user, upstream sid and upstream
/// sub), written with it, for as long as it lives.
pub fn index_entries(realm: &str, public_sid: &str, sso: &SsoSession, ttl: Duration) -> Vec<Entry> {
    let mut keys = vec![user_index(realm, &sso.user_id)];
    keys.extend(sso.upstream_sid.iter().map(|s| upstream_sid_index(realm, &sso.idp, s)));
    keys.extend(sso.upstream_sub.iter().map(|s| upstream_sub_index(realm, &sso.idp, s)));
    keys.into_iter().map(|key| Entry { key, value: public_sid.to_owned(), ttl, kind: EntryKind::IndexMember }).collect()
}

/// A live SSO session, as the admin API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSession {
    /// Its public id (the `sid` of its tokens).
    pub id: String,
    /// The record itself.
    pub sso: SsoSession,
    /// The client ids that received tokens from it, sorted.
    pub clients: Vec<String>,
}

impl Broker {
    /// A live session by its public id.
    pub async fn find_session(&self, realm: &str, public_sid: &str) -> Result<Option<UserSession>, StoreError> {
        let Some(json) = self.sessions.get(&state::sso_key_public(realm, public_sid)).await? else { return Ok(None) };
        let sso: SsoSession =
            serde_json::from_str(&json).map_err(|e| StoreError::Backend(format!("SSO session: {e}")))?;
        let mut clients = self.sessions.index_members(&clients_index(realm, public_sid)).await?;
        clients.sort();
        Ok(Some(UserSession { id: public_sid.to_owned(), sso, clients }))
    }

    /// The live sessions named by an index, oldest first; members whose
    /// session is gone are dropped from the index.
    async fn sessions_in(&self, index_key: &str, realm: &str) -> Result<Vec<UserSession>, StoreError> {
        let mut found = Vec::new();
        for sid in self.sessions.index_members(index_key).await? {
            match self.find_session(realm, &sid).await? {
                Some(s) => found.push(s),
                None => self.sessions.index_remove(index_key, &sid).await?,
            }
        }
        found.sort_by(|a, b| (a.sso.started(), &a.id).cmp(&(b.sso.started(), &b.id)));
        Ok(found)
    }

    /// A user's live sessions.
    pub async fn list_user_sessions(&self, realm: &str, user_id: &str) -> Result<Vec<UserSession>, StoreError> {
        self.sessions_in(&user_index(realm, user_id), realm).await
    }

    /// The live sessions opened through an upstream session (its `sid`).
    pub async fn sessions_by_upstream_sid(
        &self,
        realm: &str,
        alias: &str,
        upstream_sid: &str,
    ) -> Result<Vec<UserSession>, StoreError> {
        self.sessions_in(&upstream_sid_index(realm, alias, upstream_sid), realm).await
    }

    /// The live sessions of an upstream subject.
    pub async fn sessions_by_upstream_sub(
        &self,
        realm: &str,
        alias: &str,
        upstream_sub: &str,
    ) -> Result<Vec<UserSession>, StoreError> {
        self.sessions_in(&upstream_sub_index(realm, alias, upstream_sub), realm).await
    }

    /// Ends one session: its tokens stop working at once (the access-token
    /// check wants a live session), its index members go, and the clients
    /// that took part in it with a back-channel logout URL are sent a Logout
    /// Token, off this request's path. `false` when it had already ended.
    pub async fn end_session(&self, realm: &str, public_sid: &str) -> Result<bool, StoreError> {
        Ok(self.end_session_record(realm, public_sid).await?.is_some())
    }

    /// [`Broker::end_session`], answering the session that ended. The
    /// record is taken, so when two requests end one session at once only
    /// one of them sees it (and sends its back-channel logouts).
    pub(crate) async fn end_session_record(
        &self,
        realm: &str,
        public_sid: &str,
    ) -> Result<Option<UserSession>, StoreError> {
        let Some(json) = self.sessions.take(&state::sso_key_public(realm, public_sid)).await? else { return Ok(None) };
        let sso: SsoSession =
            serde_json::from_str(&json).map_err(|e| StoreError::Backend(format!("SSO session: {e}")))?;
        // Read before the index goes: who must hear of the logout.
        let mut clients = self.sessions.index_members(&clients_index(realm, public_sid)).await?;
        clients.sort();
        let s = UserSession { id: public_sid.to_owned(), sso, clients };
        self.sessions.index_remove(&user_index(realm, &s.sso.user_id), public_sid).await?;
        if let Some(up_sid) = &s.sso.upstream_sid {
            self.sessions.index_remove(&upstream_sid_index(realm, &s.sso.idp, up_sid), public_sid).await?;
        }
        if let Some(sub) = &s.sso.upstream_sub {
            self.sessions.index_remove(&upstream_sub_index(realm, &s.sso.idp, sub), public_sid).await?;
        }
        self.sessions.index_delete(&clients_index(realm, public_sid)).await?;
        log::info!("realm {realm:?}: SSO session {} ended", &public_sid[..public_sid.len().min(8)]);
        self.send_backchannel_logouts(realm, &s).await;
        Ok(Some(s))
    }

    /// Ends all of a user's sessions; returns how many were live.
    pub async fn end_user_sessions(&self, realm: &str, user_id: &str) -> Result<usize, StoreError> {
        let mut ended = 0;
        for s in self.list_user_sessions(realm, user_id).await? {
            if self.end_session(realm, &s.id).await? {
                ended += 1;
            }
        }
        // The index itself stays: a sign-in racing this one adds to it.
        Ok(ended)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn session(upstream_sid: Option<&str>) -> SsoSession {
        SsoSession {
            user_id: "u1".into(),
            auth_time: 100,
            idp: "node".into(),
            upstream_sid: upstream_sid.map(Into::into),
            upstream_sub: Some("sub-alice".into()),
            link_sub: None,
            started: 0,
            last_access: 0,
            ip_address: String::new(),
            upstream_id_token: None,
        }
    }

    #[test]
    fn a_session_is_indexed_by_user_upstream_sid_and_sub() {
        let ttl = Duration::from_secs(60);
        let keys = |s: &SsoSession| -> Vec<String> {
            let entries = index_entries("r", "p1", s, ttl);
            assert!(entries.iter().all(|e| e.value == "p1" && e.ttl == ttl && e.kind == EntryKind::IndexMember));
            entries.into_iter().map(|e| e.key).collect()
        };
        assert_eq!(
            keys(&session(Some("up-1"))),
            ["sso-user:r:u1", "sso-up-sid:r:node:up-1", "sso-up-sub:r:node:sub-alice"]
        );
        assert_eq!(keys(&session(None)), ["sso-user:r:u1", "sso-up-sub:r:node:sub-alice"]);
    }

    #[test]
    fn older_records_read_with_defaults() {
        let old: SsoSession = serde_json::from_str(r#"{"user_id":"u1","auth_time":100,"idp":"node"}"#).unwrap();
        assert_eq!((old.upstream_sid.as_deref(), old.started(), old.last_access()), (None, 100, 100));
        let used = SsoSession { started: 150, last_access: 200, ..session(None) };
        assert_eq!((used.started(), used.last_access()), (150, 200));
    }
}
