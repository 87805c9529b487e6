//! The token endpoint's one trip when the session store is this database's
//! `session_entries` table (the embedded default): the code taken, its use
//! recorded, the SSO session and the user read, in one blocking call and one
//! transaction; using a refresh token is likewise one trip (its grant
//! taken, its family, session and user read).

use async_trait::async_trait;
use diesel::prelude::*;
use federa_broker::store::{
    apply_changes, user_state, CodeRedeemer, Entry, EntryKind, Redeemed, Redemption, RefreshRedeemer, RefreshUse,
    RefreshUsed, RoleChange, SignIn, SignInWriter, SignedIn,
};

use federa_broker::StoreError;

use super::errors::db_err;
use super::users::{grant_client, has_link, link_row, linked_user_id, set_token, user_from_row, user_row};
use super::{realm_id, Res};
use crate::db::Conn;
use crate::rows::{IndexRow, SessionRow, UserRow};
use crate::schema::{federated_identities, realm_roles, realms, session_entries, user_role_mappings, users};
use crate::sessions::{now_ms, ttl_ms, EmbeddedSessions};

/// A live entry's value.
fn live(c: &mut Conn, key: &str, now: i64) -> Res<Option<String>> {
    session_entries::table
        .filter(session_entries::key.eq(key).and(session_entries::expires_at.gt(now)))
        .select(session_entries::value)
        .first(c)
        .optional()
        .map_err(db_err)
}

/// Takes a live entry: only the caller whose delete removed it gets its value.
fn take(c: &mut Conn, key: &str, now: i64) -> Res<Option<String>> {
    let value = live(c, key, now)?;
    let deleted =
        diesel::delete(session_entries::table.filter(session_entries::key.eq(key))).execute(c).map_err(db_err)?;
    Ok(value.filter(|_| deleted == 1))
}

/// Replaces an entry.
pub(crate) fn put_row(c: &mut Conn, key: &str, value: &str, expires_at: i64) -> diesel::QueryResult<()> {
    diesel::delete(session_entries::table.filter(session_entries::key.eq(key))).execute(c)?;
    let row = SessionRow { key: key.to_owned(), value: value.to_owned(), expires_at };
    diesel::insert_into(session_entries::table).values(&row).execute(c).map(|_| ())
}

/// Writes an entry: a value, or a member of an index.
pub(crate) fn write_entry(c: &mut Conn, e: Entry, now: i64) -> diesel::QueryResult<()> {
    let expires_at = now + ttl_ms(e.ttl);
    match e.kind {
        EntryKind::Value => put_row(c, &e.key, &e.value, expires_at),
        EntryKind::IndexMember => index_row(c, IndexRow { key: e.key, member: e.value, expires_at }),
        EntryKind::Replace => diesel::update(
            session_entries::table.filter(session_entries::key.eq(&e.key).and(session_entries::expires_at.gt(now))),
        )
        .set(session_entries::value.eq(&e.value))
        .execute(c)
        .map(|_| ()),
        EntryKind::Renew => diesel::update(
            session_entries::table.filter(session_entries::key.eq(&e.key).and(session_entries::expires_at.gt(now))),
        )
        .set((session_entries::value.eq(&e.value), session_entries::expires_at.eq(expires_at)))
        .execute(c)
        .map(|_| ()),
    }
}

/// The live values of `keys`, in order, in one query.
fn live_many(c: &mut Conn, keys: &[String], now: i64) -> Res<Vec<Option<String>>> {
    let found: Vec<(String, String)> = session_entries::table
        .filter(session_entries::key.eq_any(keys).and(session_entries::expires_at.gt(now)))
        .select((session_entries::key, session_entries::value))
        .load(c)
        .map_err(db_err)?;
    Ok(keys.iter().map(|k| found.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())).collect())
}

/// A user of a realm by id.
fn user_of(c: &mut Conn, realm: &str, user_id: &str) -> Res<Option<federa_broker::repr::UserRepresentation>> {
    let row = users::table
        .inner_join(realms::table.on(realms::id.eq(users::realm_id)))
        .filter(realms::name.eq(realm).and(users::id.eq(user_id)))
        .select(UserRow::as_select())
        .first(c)
        .optional()
        .map_err(db_err)?;
    let mut user = row.map(user_from_row).transpose()?;
    if let Some(u) = user.as_mut() {
        // The roles ride in the same transaction (one more statement, no
        // more trips).
        let names: Vec<String> = user_role_mappings::table
            .inner_join(realm_roles::table)
            .filter(user_role_mappings::user_id.eq(user_id))
            .select(realm_roles::name)
            .load(c)
            .map_err(db_err)?;
        u.realm_roles = Some(names);
    }
    Ok(user)
}

/// Uses a refresh token: its grant taken (or its use mark), and the family,
/// the session and the user read, in the same transaction.
fn use_refresh(c: &mut Conn, r: &RefreshUse) -> Res<RefreshUsed> {
    let now = now_ms();
    let Some(grant) = take(c, &r.token_key, now)? else {
        let mark = take(c, &r.used_key, now)?;
        return Ok(RefreshUsed { mark, ..RefreshUsed::default() });
    };
    let Some(refs) = (r.refs)(&r.realm, &grant) else {
        return Ok(RefreshUsed { grant: Some(grant), ..RefreshUsed::default() });
    };
    let found = live_many(c, &refs.keys, now)?;
    let user = user_of(c, &r.realm, &refs.user_id)?;
    Ok(RefreshUsed { grant: Some(grant), mark: None, found, user })
}

/// Adds a member to a session index; it lives until the later of its old
/// and new expiry.
///
/// One upsert statement: it runs on the hot path (every sign-in and code
/// exchange), where three statements cost a measurable share of the CPU per
/// operation. The SQL differs only in the name of the larger-of function.
pub(crate) fn index_row(c: &mut Conn, row: IndexRow) -> diesel::QueryResult<()> {
    use diesel::sql_types::{BigInt, Text};
    match c {
        Conn::Sqlite(c) => diesel::sql_query(
            "INSERT INTO session_index (key, member, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (key, member) DO UPDATE SET expires_at = MAX(session_index.expires_at, excluded.expires_at)",
        )
        .bind::<Text, _>(&row.key)
        .bind::<Text, _>(&row.member)
        .bind::<BigInt, _>(row.expires_at)
        .execute(c)?,
        Conn::Pg(c) => diesel::sql_query(
            "INSERT INTO session_index (key, member, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key, member) DO UPDATE SET expires_at = GREATEST(session_index.expires_at, excluded.expires_at)",
        )
        .bind::<Text, _>(&row.key)
        .bind::<Text, _>(&row.member)
        .bind::<BigInt, _>(row.expires_at)
        .execute(c)?,
    };
    Ok(())
}

impl EmbeddedSessions {
    /// Runs `f` in one write transaction on the blocking pool: one trip,
    /// one commit; an error inside rolls everything back.
    async fn one_trip<T, F>(&self, f: F) -> Res<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> Res<T> + Send + 'static,
    {
        let (pool, gate) = (self.pool.clone(), self.gate.clone());
        let work = move || -> Res<T> {
            let _turn = gate.lock();
            let mut c = pool.get().map_err(|e| StoreError::Backend(format!("database pool: {e}")))?;
            let mut out = None;
            let mut f = Some(f);
            c.transaction::<_, diesel::result::Error, _>(|c| {
                let result = f.take().map(|f| f(c));
                let failed = matches!(result, Some(Err(_)));
                out = result;
                if failed {
                    Err(diesel::result::Error::RollbackTransaction)
                } else {
                    Ok(())
                }
            })
            .or_else(|e| match e {
                diesel::result::Error::RollbackTransaction => Ok(()),
                e => Err(db_err(e)),
            })?;
            out.unwrap_or_else(|| Err(StoreError::Backend("transaction produced nothing".into())))
        };
        tokio::task::spawn_blocking(work).await.map_err(|e| StoreError::Backend(format!("blocking task: {e}")))?
    }
}

#[async_trait]
impl CodeRedeemer for EmbeddedSessions {
    async fn redeem_code(&self, r: Redemption) -> Res<Redeemed> {
        self.one_trip(move |c| redeem(c, &r)).await
    }
}

#[async_trait]
impl RefreshRedeemer for EmbeddedSessions {
    async fn use_refresh(&self, r: RefreshUse) -> Res<RefreshUsed> {
        self.one_trip(move |c| use_refresh(c, &r)).await
    }
}

#[async_trait]
impl SignInWriter for EmbeddedSessions {
    async fn sign_in(&self, s: SignIn) -> Res<SignedIn> {
        let key = self.key.clone().ok_or_else(|| StoreError::Backend("sessions without the master key".into()))?;
        self.one_trip(move |c| sign_in(c, &key, s)).await
    }
}

/// Whether another user of the realm has `email`.
fn email_taken(c: &mut Conn, realm_id: &str, email: &str, except: Option<&str>) -> Res<bool> {
    let mut q = users::table.filter(users::realm_id.eq(realm_id).and(users::email.eq(email))).into_boxed();
    if let Some(id) = except {
        q = q.filter(users::id.ne(id));
    }
    Ok(q.count().get_result::<i64>(c).map_err(db_err)? > 0)
}

/// The user of the realm with this username (stored in lower case): their
/// id and whether they are enabled.
fn known_user(c: &mut Conn, realm_id: &str, username: &str) -> Res<Option<(String, bool)>> {
    users::table
        .filter(users::realm_id.eq(realm_id).and(users::username.eq(username.to_lowercase())))
        .select((users::id, users::enabled))
        .first(c)
        .optional()
        .map_err(db_err)
}

fn sign_in(c: &mut Conn, key: &crate::MasterKey, s: SignIn) -> Res<SignedIn> {
    let realm = realm_id(c, &s.realm)?;
    let linked = linked_user_id(c, &realm, &s.alias, &s.subject)?;
    let mut email_unverified = false;
    let mut roles = Vec::new();
    let (user_id, created) = match linked {
        Some(id) => {
            let row = users::table
                .filter(users::id.eq(&id))
                .select(UserRow::as_select())
                .first(c)
                .optional()
                .map_err(db_err)?
                .ok_or_else(|| StoreError::NotFound("linked user not found".into()))?;
            let mut user = user_from_row(row)?;
            if user.enabled == Some(false) {
                return Ok(SignedIn::Disabled);
            }
            if s.force {
                s.profile.apply(&mut user);
            }
            let mut mapped = false;
            if let Some(map) = &s.mappers {
                let state = user_state(&user, false, role_names(c, &realm, &id)?);
                (mapped, roles) = apply_changes(&mut user, map(&state));
                if user.username.as_deref() != Some(state.username.as_str())
                    && username_taken(c, &realm, user.username.as_deref().unwrap_or_default())?
                {
                    // A renaming mapper must not cost the sign-in (and the
                    // rest of the changes, a revoked role among them).
                    log::warn!(
                        "realm {:?}: a mapper of {:?} renames {:?} to a username another user holds; the name is kept",
                        s.realm,
                        s.alias,
                        state.username
                    );
                    user.username = Some(state.username);
                }
            }
            if s.force || mapped {
                if let (Some(email), Some(true)) = (user.email.clone(), user.email_verified) {
                    if email_taken(c, &realm, &email, Some(&id))? {
                        user.email_verified = Some(false);
                        email_unverified = true;
                    }
                }
                let row = user_row(&realm, &user)?;
                diesel::update(users::table.filter(users::realm_id.eq(&realm).and(users::id.eq(&id))))
                    .set(&row)
                    .execute(c)
                    .map_err(db_err)?;
            }
            // storeToken: the tokens of this sign-in replace the stored ones.
            if let Some(token) = &s.token {
                set_token(c, key, &realm, &id, &s.alias, token)?;
            }
            (id, false)
        }
        None if s.new_user.is_none() => {
            let Some(username) = s.link_username.as_deref() else { return Ok(SignedIn::FirstLoginRefused) };
            match known_user(c, &realm, username)? {
                None => return Ok(SignedIn::NotKnown),
                Some((_, false)) => return Ok(SignedIn::Disabled),
                Some((id, true)) => {
                    if has_link(c, &realm, &id, &s.alias)? {
                        return Ok(SignedIn::NotKnown);
                    }
                    diesel::insert_into(federated_identities::table)
                        .values(link_row(key, &realm, &id, &s.link, s.token.as_ref())?)
                        .execute(c)
                        .map_err(db_err)?;
                    (id, false)
                }
            }
        }
        None => {
            let Some(mut user) = s.new_user else { return Ok(SignedIn::FirstLoginRefused) };
            if let Some(map) = &s.mappers {
                let changes = map(&user_state(&user, true, Vec::new()));
                (_, roles) = apply_changes(&mut user, changes);
            }
            if let (Some(email), Some(true)) = (user.email.clone(), user.email_verified) {
                if email_taken(c, &realm, &email, None)? {
                    user.email_verified = Some(false);
                    email_unverified = true;
                }
            }
            diesel::insert_into(users::table).values(user_row(&realm, &user)?).execute(c).map_err(db_err)?;
            let id = user.id.clone().unwrap_or_default();
            diesel::insert_into(federated_identities::table)
                .values(link_row(key, &realm, &id, &s.link, s.token.as_ref())?)
                .execute(c)
                .map_err(db_err)?;
            grant_client(c, &realm, &id, &s.grant_on_create)?;
            (id, true)
        }
    };
    let mut skipped_roles = Vec::new();
    for change in roles {
        let (RoleChange::Grant(name) | RoleChange::Revoke(name)) = &change;
        // Keycloak logs and skips a role the realm lacks; so does the broker.
        let Some(role) = role_id(c, &realm, name)? else {
            skipped_roles.push(name.clone());
            continue;
        };
        let mapping = user_role_mappings::user_id.eq(&user_id).and(user_role_mappings::role_id.eq(&role));
        match change {
            RoleChange::Grant(_) => {
                let held = user_role_mappings::table.filter(mapping).count().get_result::<i64>(c).map_err(db_err)?;
                if held == 0 {
                    diesel::insert_into(user_role_mappings::table)
                        .values((user_role_mappings::user_id.eq(&user_id), user_role_mappings::role_id.eq(&role)))
                        .execute(c)
                        .map_err(db_err)?;
                }
            }
            RoleChange::Revoke(_) => {
                diesel::delete(user_role_mappings::table.filter(mapping)).execute(c).map_err(db_err)?;
            }
        }
    }
    let now = now_ms();
    for e in (s.entries)(&user_id) {
        write_entry(c, e, now).map_err(db_err)?;
    }
    Ok(SignedIn::User { user_id, created, email_unverified, skipped_roles })
}

/// Whether a user of the realm has the username.
fn username_taken(c: &mut Conn, realm_id: &str, username: &str) -> Res<bool> {
    let q = users::table.filter(users::realm_id.eq(realm_id).and(users::username.eq(username)));
    Ok(q.count().get_result::<i64>(c).map_err(db_err)? > 0)
}

/// The names of the realm roles granted to a user.
pub(crate) fn role_names(c: &mut Conn, realm_id: &str, user_id: &str) -> Res<Vec<String>> {
    user_role_mappings::table
        .inner_join(realm_roles::table)
        .filter(user_role_mappings::user_id.eq(user_id).and(realm_roles::realm_id.eq(realm_id)))
        .select(realm_roles::name)
        .load(c)
        .map_err(db_err)
}

fn role_id(c: &mut Conn, realm_id: &str, name: &str) -> Res<Option<String>> {
    realm_roles::table
        .filter(realm_roles::realm_id.eq(realm_id).and(realm_roles::name.eq(name)))
        .select(realm_roles::id)
        .first(c)
        .optional()
        .map_err(db_err)
}

fn redeem(c: &mut Conn, r: &Redemption) -> Res<Redeemed> {
    let now = now_ms();
    let Some(grant) = take(c, &r.code_key, now)? else {
        let previous_use = take(c, &r.used_key, now)?;
        return Ok(Redeemed { previous_use, ..Redeemed::default() });
    };
    diesel::delete(session_entries::table.filter(session_entries::key.eq(&r.used_key))).execute(c).map_err(db_err)?;
    let ttl = ttl_ms(r.used_ttl);
    let used = SessionRow { key: r.used_key.clone(), value: r.used_value.clone(), expires_at: now + ttl };
    diesel::insert_into(session_entries::table).values(&used).execute(c).map_err(db_err)?;
    let Some(refs) = (r.refs)(&r.realm, &grant) else {
        return Ok(Redeemed { grant: Some(grant), ..Redeemed::default() });
    };
    let session = live(c, &refs.session_key, now)?;
    if let Some(live) = &session {
        let ttl = ttl_ms(r.index_ttl);
        let (key, member) = refs.client_index.clone();
        index_row(c, IndexRow { key, member, expires_at: now + ttl }).map_err(db_err)?;
        for e in r.issue.as_ref().map(|issue| issue(&grant, live)).unwrap_or_default() {
            write_entry(c, e, now).map_err(db_err)?;
        }
    }
    let user = user_of(c, &r.realm, &refs.user_id)?;
    Ok(Redeemed { grant: Some(grant), previous_use: None, session, user })
}
