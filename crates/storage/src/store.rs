//! [`DbStore`]: the broker's [`Store`] on diesel, one code path for SQLite and
//! PostgreSQL. Blocking diesel work runs on tokio's blocking pool, never on
//! the async workers.

use std::sync::Arc;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use federa_broker::keys::SigningKey;
use federa_broker::repr::{
    ClientRepresentation, FederatedIdentityRepresentation, IdentityProviderMapperRepresentation,
    IdentityProviderRepresentation, RealmRepresentation, RoleRepresentation, UserRepresentation,
};
use federa_broker::store::{AuditEvent, RealmBundle, RealmRecord, UserImport, UserQuery};
use federa_broker::{Store, StoreError};
use federa_protocol::Secret;

use crate::crypto::MasterKey;
use crate::db::{self, Conn, DbPool, WriteGate};
use crate::rows::*;
use crate::schema::*;
use crate::sessions::EmbeddedSessions;
use crate::StorageError;

/// The durable store.
#[derive(Clone)]
pub struct DbStore {
    pool: DbPool,
    key: Arc<MasterKey>,
    gate: WriteGate,
}

type Res<T> = Result<T, StoreError>;

/// Maps diesel's errors to the broker's: uniqueness and foreign keys become
/// conflicts, everything else a backend failure.
fn db_err(e: DieselError) -> StoreError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            StoreError::Conflict(format!("already exists ({})", info.message()))
        }
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
            StoreError::Conflict(format!("refers to something missing ({})", info.message()))
        }
        DieselError::NotFound => StoreError::NotFound("not found".into()),
        other => StoreError::Backend(other.to_string()),
    }
}

fn json_err(e: serde_json::Error) -> StoreError {
    StoreError::Backend(format!("stored JSON: {e}"))
}

fn to_json<T: serde::Serialize>(v: &T) -> Res<String> {
    serde_json::to_string(v).map_err(json_err)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Res<T> {
    serde_json::from_str(s).map_err(json_err)
}

fn realm_id(c: &mut Conn, name: &str) -> Res<String> {
    realms::table
        .filter(realms::name.eq(name))
        .select(realms::id)
        .first::<String>(c)
        .optional()
        .map_err(db_err)?
        .ok_or_else(|| StoreError::NotFound(format!("realm {name:?} not found")))
}

fn realm_row_to_record(row: RealmRow) -> Res<RealmRecord> {
    Ok(RealmRecord { repr: from_json(&row.repr)?, managed_by: row.managed_by, source_digest: row.source_digest })
}

fn client_row(key: &MasterKey, realm_id: &str, c: &ClientRepresentation) -> Res<ClientRow> {
    let mut repr = c.clone();
    let secret = repr.secret.take();
    Ok(ClientRow {
        id: repr.id.clone().unwrap_or_default(),
        realm_id: realm_id.to_owned(),
        client_id: repr.client_id.clone().unwrap_or_default(),
        repr: to_json(&repr)?,
        secret_enc: secret.map(|s| key.encrypt(&s)).transpose()?,
    })
}

fn client_from_row(key: &MasterKey, row: ClientRow) -> Res<ClientRepresentation> {
    let mut c: ClientRepresentation = from_json(&row.repr)?;
    c.secret = row.secret_enc.map(|s| key.decrypt(&s).map(|s| s.expose().to_owned())).transpose()?;
    Ok(c)
}

fn idp_row(key: &MasterKey, realm_id: &str, p: &IdentityProviderRepresentation) -> Res<IdpRow> {
    let mut repr = p.clone();
    let secret = repr.config.remove("clientSecret").filter(|s| !s.is_empty());
    Ok(IdpRow {
        id: repr.internal_id.clone().unwrap_or_default(),
        realm_id: realm_id.to_owned(),
        alias: repr.alias.clone().unwrap_or_default(),
        repr: to_json(&repr)?,
        client_secret_enc: secret.map(|s| key.encrypt(&s)).transpose()?,
    })
}

fn idp_from_row(key: &MasterKey, row: IdpRow) -> Res<IdentityProviderRepresentation> {
    let mut p: IdentityProviderRepresentation = from_json(&row.repr)?;
    if let Some(enc) = row.client_secret_enc {
        p.config.insert("clientSecret".into(), key.decrypt(&enc)?.expose().to_owned());
    }
    Ok(p)
}

fn mapper_row(realm_id: &str, m: &IdentityProviderMapperRepresentation) -> Res<MapperRow> {
    Ok(MapperRow {
        id: m.id.clone().unwrap_or_default(),
        realm_id: realm_id.to_owned(),
        idp_alias: m.identity_provider_alias.clone().unwrap_or_default(),
        name: m.name.clone().unwrap_or_default(),
        repr: to_json(m)?,
    })
}

fn role_row(realm_id: &str, r: &RoleRepresentation) -> RoleRow {
    RoleRow {
        id: r.id.clone().unwrap_or_default(),
        realm_id: realm_id.to_owned(),
        name: r.name.clone().unwrap_or_default(),
        description: r.description.clone(),
    }
}

fn role_from_row(r: RoleRow) -> RoleRepresentation {
    RoleRepresentation { id: Some(r.id), name: Some(r.name), description: r.description, ..Default::default() }
}

fn user_row(realm_id: &str, u: &UserRepresentation) -> Res<UserRow> {
    Ok(UserRow {
        id: u.id.clone().unwrap_or_default(),
        realm_id: realm_id.to_owned(),
        username: u.username.clone().unwrap_or_default(),
        email: u.email.clone(),
        email_verified: u.email_verified.unwrap_or(false),
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        enabled: u.enabled.unwrap_or(true),
        created_timestamp: u.created_timestamp.unwrap_or_default(),
        attributes: to_json(&u.attributes.clone().unwrap_or_default())?,
    })
}

fn user_from_row(r: UserRow) -> Res<UserRepresentation> {
    let attributes: std::collections::BTreeMap<String, Vec<String>> = from_json(&r.attributes)?;
    Ok(UserRepresentation {
        id: Some(r.id),
        username: Some(r.username),
        email: r.email,
        email_verified: Some(r.email_verified),
        first_name: r.first_name,
        last_name: r.last_name,
        enabled: Some(r.enabled),
        created_timestamp: Some(r.created_timestamp),
        attributes: if attributes.is_empty() { None } else { Some(attributes) },
        ..Default::default()
    })
}

fn link_row(
    key: &MasterKey,
    realm_id: &str,
    user_id: &str,
    l: &FederatedIdentityRepresentation,
    token: Option<&Secret>,
) -> Res<LinkRow> {
    Ok(LinkRow {
        user_id: user_id.to_owned(),
        realm_id: realm_id.to_owned(),
        idp_alias: l.identity_provider.clone().unwrap_or_default(),
        upstream_subject: l.user_id.clone().unwrap_or_default(),
        upstream_username: l.user_name.clone(),
        token_enc: token.map(|t| key.encrypt(t.expose())).transpose()?,
    })
}

fn grant(c: &mut Conn, realm_id: &str, user_id: &str, names: &[String]) -> Res<()> {
    for name in names {
        let role: String = realm_roles::table
            .filter(realm_roles::realm_id.eq(realm_id).and(realm_roles::name.eq(name)))
            .select(realm_roles::id)
            .first(c)
            .optional()
            .map_err(db_err)?
            .ok_or_else(|| StoreError::NotFound(format!("role {name:?} not found")))?;
        let exists = user_role_mappings::table
            .filter(user_role_mappings::user_id.eq(user_id).and(user_role_mappings::role_id.eq(&role)))
            .count()
            .get_result::<i64>(c)
            .map_err(db_err)?;
        if exists == 0 {
            diesel::insert_into(user_role_mappings::table)
                .values((user_role_mappings::user_id.eq(user_id), user_role_mappings::role_id.eq(&role)))
                .execute(c)
                .map_err(db_err)?;
        }
    }
    Ok(())
}

fn insert_user(c: &mut Conn, key: &MasterKey, realm_id: &str, u: &UserImport) -> Res<()> {
    diesel::insert_into(users::table).values(user_row(realm_id, &u.user)?).execute(c).map_err(db_err)?;
    let user_id = u.user.id.clone().unwrap_or_default();
    grant(c, realm_id, &user_id, &u.realm_roles)?;
    for l in &u.links {
        diesel::insert_into(federated_identities::table)
            .values(link_row(key, realm_id, &user_id, l, None)?)
            .execute(c)
            .map_err(db_err)?;
    }
    Ok(())
}

fn insert_config(c: &mut Conn, key: &MasterKey, realm_id: &str, b: &RealmBundle) -> Res<()> {
    for client in &b.clients {
        diesel::insert_into(clients::table).values(client_row(key, realm_id, client)?).execute(c).map_err(db_err)?;
    }
    for idp in &b.identity_providers {
        diesel::insert_into(identity_providers::table)
            .values(idp_row(key, realm_id, idp)?)
            .execute(c)
            .map_err(db_err)?;
    }
    for m in &b.mappers {
        diesel::insert_into(idp_mappers::table).values(mapper_row(realm_id, m)?).execute(c).map_err(db_err)?;
    }
    Ok(())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl DbStore {
    /// Opens the database named by `url` with the master key. Nothing is
    /// migrated yet: call [`DbStore::migrate`].
    pub fn open(url: &str, key: MasterKey) -> Result<Self, StorageError> {
        let gate = WriteGate::for_url(url)?;
        Ok(Self { pool: db::pool(url)?, key: Arc::new(key), gate })
    }

    /// Runs pending migrations; returns how many ran.
    pub fn migrate(&self) -> Result<usize, StorageError> {
        let mut c = self.pool.get().map_err(|e| StorageError::Connect(e.to_string()))?;
        db::migrate(&mut c)
    }

    /// The session store kept in this database.
    pub fn embedded_sessions(&self) -> EmbeddedSessions {
        EmbeddedSessions::new(self.pool.clone(), self.gate.clone())
    }

    /// Counts the rows of every table, for tests that check nothing changed.
    pub async fn row_counts(&self) -> Res<Vec<(&'static str, i64)>> {
        self.run(|c, _| {
            Ok(vec![
                ("realms", realms::table.count().get_result(c).map_err(db_err)?),
                ("clients", clients::table.count().get_result(c).map_err(db_err)?),
                ("identity_providers", identity_providers::table.count().get_result(c).map_err(db_err)?),
                ("idp_mappers", idp_mappers::table.count().get_result(c).map_err(db_err)?),
                ("realm_roles", realm_roles::table.count().get_result(c).map_err(db_err)?),
                ("users", users::table.count().get_result(c).map_err(db_err)?),
                ("user_role_mappings", user_role_mappings::table.count().get_result(c).map_err(db_err)?),
                ("federated_identities", federated_identities::table.count().get_result(c).map_err(db_err)?),
                ("realm_keys", realm_keys::table.count().get_result(c).map_err(db_err)?),
                ("audit_events", audit_events::table.count().get_result(c).map_err(db_err)?),
            ])
        })
        .await
    }

    /// Runs blocking diesel work on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Res<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn, &MasterKey) -> Res<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let key = self.key.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = pool.get().map_err(|e| StoreError::Backend(format!("database pool: {e}")))?;
            f(&mut c, &key)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("blocking task: {e}")))?
    }

    /// Runs blocking diesel work that writes, one writer at a time on SQLite.
    async fn run_write<T, F>(&self, f: F) -> Res<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn, &MasterKey) -> Res<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        let key = self.key.clone();
        let gate = self.gate.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = gate.lock();
            let mut c = pool.get().map_err(|e| StoreError::Backend(format!("database pool: {e}")))?;
            f(&mut c, &key)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("blocking task: {e}")))?
    }

    /// Runs blocking diesel work in one transaction.
    async fn tx<T, F>(&self, f: F) -> Res<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn, &MasterKey) -> Res<T> + Send + 'static,
    {
        self.run_write(move |c, key| {
            let mut out = None;
            let result = c.transaction::<_, TxError, _>(|c| {
                out = Some(f(c, key).map_err(TxError::Store)?);
                Ok(())
            });
            match result {
                Ok(()) => out.ok_or_else(|| StoreError::Backend("transaction produced nothing".into())),
                Err(TxError::Store(e)) => Err(e),
                Err(TxError::Diesel(e)) => Err(db_err(e)),
            }
        })
        .await
    }
}

/// A transaction's error: the store's own, or diesel's from begin/commit.
enum TxError {
    Store(StoreError),
    Diesel(DieselError),
}

impl From<DieselError> for TxError {
    fn from(e: DieselError) -> Self {
        TxError::Diesel(e)
    }
}

#[async_trait]
impl Store for DbStore {
    async fn ping(&self) -> Res<()> {
        self.run(|c, _| diesel::connection::SimpleConnection::batch_execute(c, "SELECT 1").map_err(db_err)).await
    }

    async fn list_realms(&self) -> Res<Vec<RealmRecord>> {
        self.run(|c, _| {
            let rows: Vec<RealmRow> =
                realms::table.order(realms::name).select(RealmRow::as_select()).load(c).map_err(db_err)?;
            rows.into_iter().map(realm_row_to_record).collect()
        })
        .await
    }

    async fn get_realm(&self, realm: &str) -> Res<Option<RealmRecord>> {
        let realm = realm.to_owned();
        self.run(move |c, _| {
            let row = realms::table
                .filter(realms::name.eq(&realm))
                .select(RealmRow::as_select())
                .first(c)
                .optional()
                .map_err(db_err)?;
            row.map(realm_row_to_record).transpose()
        })
        .await
    }

    async fn create_realm(&self, b: RealmBundle) -> Res<()> {
        self.tx(move |c, key| {
            let id = b.realm.repr.id.clone().unwrap_or_default();
            diesel::insert_into(realms::table)
                .values(RealmRow {
                    id: id.clone(),
                    name: b.realm.repr.realm.clone().unwrap_or_default(),
                    repr: to_json(&b.realm.repr)?,
                    managed_by: b.realm.managed_by.clone(),
                    source_digest: b.realm.source_digest.clone(),
                    created_at: now(),
                })
                .execute(c)
                .map_err(db_err)?;
            insert_config(c, key, &id, &b)?;
            for r in &b.roles {
                diesel::insert_into(realm_roles::table).values(role_row(&id, r)).execute(c).map_err(db_err)?;
            }
            for u in &b.users {
                insert_user(c, key, &id, u)?;
            }
            for k in &b.keys {
                diesel::insert_into(realm_keys::table)
                    .values(KeyRow {
                        kid: k.kid.clone(),
                        realm_id: id.clone(),
                        alg: k.alg.clone(),
                        private_enc: key.encrypt(k.private_pem.expose())?,
                        public_jwk: to_json(&k.public_jwk)?,
                        created_at: k.created_at,
                        active: k.active,
                    })
                    .execute(c)
                    .map_err(db_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn replace_realm_config(&self, b: RealmBundle) -> Res<()> {
        self.tx(move |c, key| {
            let name = b.realm.repr.realm.clone().unwrap_or_default();
            let id = realm_id(c, &name)?;
            let mut repr = b.realm.repr.clone();
            repr.id = Some(id.clone());
            diesel::update(realms::table.filter(realms::id.eq(&id)))
                .set((
                    realms::repr.eq(to_json(&repr)?),
                    realms::managed_by.eq(b.realm.managed_by.clone()),
                    realms::source_digest.eq(b.realm.source_digest.clone()),
                ))
                .execute(c)
                .map_err(db_err)?;
            diesel::delete(clients::table.filter(clients::realm_id.eq(&id))).execute(c).map_err(db_err)?;
            diesel::delete(idp_mappers::table.filter(idp_mappers::realm_id.eq(&id))).execute(c).map_err(db_err)?;
            diesel::delete(identity_providers::table.filter(identity_providers::realm_id.eq(&id)))
                .execute(c)
                .map_err(db_err)?;
            insert_config(c, key, &id, &b)?;
            for r in &b.roles {
                let exists: i64 = realm_roles::table
                    .filter(realm_roles::realm_id.eq(&id).and(realm_roles::name.eq(r.name.clone().unwrap_or_default())))
                    .count()
                    .get_result(c)
                    .map_err(db_err)?;
                if exists == 0 {
                    diesel::insert_into(realm_roles::table).values(role_row(&id, r)).execute(c).map_err(db_err)?;
                }
            }
            for u in &b.users {
                let exists: i64 = users::table
                    .filter(
                        users::realm_id.eq(&id).and(users::username.eq(u.user.username.clone().unwrap_or_default())),
                    )
                    .count()
                    .get_result(c)
                    .map_err(db_err)?;
                if exists == 0 {
                    insert_user(c, key, &id, u)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn update_realm(&self, realm: &str, repr: &RealmRepresentation) -> Res<()> {
        let realm = realm.to_owned();
        let json = to_json(repr)?;
        self.run_write(move |c, _| {
            let n = diesel::update(realms::table.filter(realms::name.eq(&realm)))
                .set(realms::repr.eq(json))
                .execute(c)
                .map_err(db_err)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("realm {realm:?} not found")));
            }
            Ok(())
        })
        .await
    }

    async fn delete_realm(&self, realm: &str) -> Res<()> {
        let realm = realm.to_owned();
        self.tx(move |c, _| {
            let id = realm_id(c, &realm)?;
            // Children go explicitly, so that SQLite without foreign keys
            // enforced (an old file) ends in the same state as PostgreSQL.
            let users_of_realm = users::table.filter(users::realm_id.eq(&id)).select(users::id);
            diesel::delete(user_role_mappings::table.filter(user_role_mappings::user_id.eq_any(users_of_realm)))
                .execute(c)
                .map_err(db_err)?;
            diesel::delete(federated_identities::table.filter(federated_identities::realm_id.eq(&id)))
                .execute(c)
                .map_err(db_err)?;
            diesel::delete(users::table.filter(users::realm_id.eq(&id))).execute(c).map_err(db_err)?;
            diesel::delete(realm_roles::table.filter(realm_roles::realm_id.eq(&id))).execute(c).map_err(db_err)?;
            diesel::delete(idp_mappers::table.filter(idp_mappers::realm_id.eq(&id))).execute(c).map_err(db_err)?;
            diesel::delete(identity_providers::table.filter(identity_providers::realm_id.eq(&id)))
                .execute(c)
                .map_err(db_err)?;
            diesel::delete(clients::table.filter(clients::realm_id.eq(&id))).execute(c).map_err(db_err)?;
            diesel::delete(realm_keys::table.filter(realm_keys::realm_id.eq(&id))).execute(c).map_err(db_err)?;
            diesel::delete(realms::table.filter(realms::id.eq(&id))).execute(c).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn list_clients(&self, realm: &str) -> Res<Vec<ClientRepresentation>> {
        let realm = realm.to_owned();
        self.run(move |c, key| {
            let id = realm_id(c, &realm)?;
            let rows: Vec<ClientRow> = clients::table
                .filter(clients::realm_id.eq(&id))
                .order(clients::client_id)
                .select(ClientRow::as_select())
                .load(c)
                .map_err(db_err)?;
            rows.into_iter().map(|r| client_from_row(key, r)).collect()
        })
        .await
    }

    async fn find_client(&self, realm: &str, client_id: &str) -> Res<Option<ClientRepresentation>> {
        let (realm, client_id) = (realm.to_owned(), client_id.to_owned());
        self.run(move |c, key| {
            let row = clients::table
                .inner_join(realms::table.on(realms::id.eq(clients::realm_id)))
                .filter(realms::name.eq(&realm).and(clients::client_id.eq(&client_id)))
                .select(ClientRow::as_select())
                .first(c)
                .optional()
                .map_err(db_err)?;
            row.map(|r| client_from_row(key, r)).transpose()
        })
        .await
    }

    async fn get_client(&self, realm: &str, client: &str) -> Res<Option<ClientRepresentation>> {
        let (realm, client) = (realm.to_owned(), client.to_owned());
        self.run(move |c, key| {
            let id = realm_id(c, &realm)?;
            let row = clients::table
                .filter(clients::realm_id.eq(&id).and(clients::id.eq(&client)))
                .select(ClientRow::as_select())
                .first(c)
                .optional()
                .map_err(db_err)?;
            row.map(|r| client_from_row(key, r)).transpose()
        })
        .await
    }

    async fn create_client(&self, realm: &str, client: &ClientRepresentation) -> Res<()> {
        let (realm, client) = (realm.to_owned(), client.clone());
        self.run_write(move |c, key| {
            let id = realm_id(c, &realm)?;
            diesel::insert_into(clients::table).values(client_row(key, &id, &client)?).execute(c).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn update_client(&self, realm: &str, client: &ClientRepresentation) -> Res<()> {
        let (realm, client) = (realm.to_owned(), client.clone());
        self.run_write(move |c, key| {
            let id = realm_id(c, &realm)?;
            let row = client_row(key, &id, &client)?;
            let n = diesel::update(clients::table.filter(clients::realm_id.eq(&id).and(clients::id.eq(&row.id))))
                .set(&row)
                .execute(c)
                .map_err(db_err)?;
            if n == 0 {
                return Err(StoreError::NotFound("client not found".into()));
            }
            Ok(())
        })
        .await
    }

    async fn delete_client(&self, realm: &str, client: &str) -> Res<()> {
        let (realm, client) = (realm.to_owned(), client.to_owned());
        self.run_write(move |c, _| {
            let id = realm_id(c, &realm)?;
            diesel::delete(clients::table.filter(clients::realm_id.eq(&id).and(clients::id.eq(&client))))
                .execute(c)
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn list_idps(&self, realm: &str) -> Res<Vec<IdentityProviderRepresentation>> {
        let realm = realm.to_owned();
        self.run(move |c, key| {
            let id = realm_id(c, &realm)?;
            let rows: Vec<IdpRow> = identity_providers::table
                .filter(identity_providers::realm_id.eq(&id))
                .order(identity_providers::alias)
                .select(IdpRow::as_select())
                .load(c)
                .map_err(db_err)?;
            rows.into_iter().map(|r| idp_from_row(key, r)).collect()
        })
        .await
    }

    async fn get_idp(&self, realm: &str, alias: &str) -> Res<Option<IdentityProviderRepresentation>> {
        let (realm, alias) = (realm.to_owned(), alias.to_owned());
        self.run(move |c, key| {
            let id = realm_id(c, &realm)?;
            let row = identity_providers::table
                .filter(identity_providers::realm_id.eq(&id).and(identity_providers::alias.eq(&alias)))
                .select(IdpRow::as_select())
                .first(c)
                .optional()
                .map_err(db_err)?;
            row.map(|r| idp_from_row(key, r)).transpose()
        })
        .await
    }

    async fn create_idp(&self, realm: &str, idp: &IdentityProviderRepresentation) -> Res<()> {
        let (realm, idp) = (realm.to_owned(), idp.clone());
        self.run_write(move |c, key| {
            let id = realm_id(c, &realm)?;
            diesel::insert_into(identity_providers::table)
                .values(idp_row(key, &id, &idp)?)
                .execute(c)
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn update_idp(&self, realm: &str, idp: &IdentityProviderRepresentation) -> Res<()> {
        let (realm, idp) = (realm.to_owned(), idp.clone());
        self.run_write(move |c, key| {
            let id = realm_id(c, &realm)?;
            let row = idp_row(key, &id, &idp)?;
            let n = diesel::update(
                identity_providers::table
                    .filter(identity_providers::realm_id.eq(&id).and(identity_providers::alias.eq(&row.alias))),
            )
            .set((
                identity_providers::repr.eq(&row.repr),
                identity_providers::client_secret_enc.eq(&row.client_secret_enc),
            ))
            .execute(c)
            .map_err(db_err)?;
            if n == 0 {
                return Err(StoreError::NotFound("identity provider not found".into()));
            }
            Ok(())
        })
        .await
    }

    async fn delete_idp(&self, realm: &str, alias: &str) -> Res<()> {
        let (realm, alias) = (realm.to_owned(), alias.to_owned());
        self.tx(move |c, _| {
            let id = realm_id(c, &realm)?;
            diesel::delete(
                idp_mappers::table.filter(idp_mappers::realm_id.eq(&id).and(idp_mappers::idp_alias.eq(&alias))),
            )
            .execute(c)
            .map_err(db_err)?;
            diesel::delete(
                federated_identities::table
                    .filter(federated_identities::realm_id.eq(&id).and(federated_identities::idp_alias.eq(&alias))),
            )
            .execute(c)
            .map_err(db_err)?;
            diesel::delete(
                identity_providers::table
                    .filter(identity_providers::realm_id.eq(&id).and(identity_providers::alias.eq(&alias))),
            )
            .execute(c)
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn list_mappers(&self, realm: &str, alias: &str) -> Res<Vec<IdentityProviderMapperRepresentation>> {
        let (realm, alias) = (realm.to_owned(), alias.to_owned());
        self.run(move |c, _| {
            let id = realm_id(c, &realm)?;
            let rows: Vec<MapperRow> = idp_mappers::table
                .filter(idp_mappers::realm_id.eq(&id).and(idp_mappers::idp_alias.eq(&alias)))
                .order(idp_mappers::name)
                .select(MapperRow::as_select())
                .load(c)
                .map_err(db_err)?;
            rows.iter().map(|r| from_json(&r.repr)).collect()
        })
        .await
    }

    async fn get_mapper(
        &self,
        realm: &str,
        alias: &str,
        mapper: &str,
    ) -> Res<Option<IdentityProviderMapperRepresentation>> {
        let (realm, alias, mapper) = (realm.to_owned(), alias.to_owned(), mapper.to_owned());
        self.run(move |c, _| {
            let id = realm_id(c, &realm)?;
            let row: Option<MapperRow> = idp_mappers::table
                .filter(
                    idp_mappers::realm_id
                        .eq(&id)
                        .and(idp_mappers::idp_alias.eq(&alias))
                        .and(idp_mappers::id.eq(&mapper)),
                )
                .select(MapperRow::as_select())
                .first(c)
                .optional()
                .map_err(db_err)?;
            row.map(|r| from_json(&r.repr)).transpose()
        })
        .await
    }

    async fn create_mapper(&self, realm: &str, m: &IdentityProviderMapperRepresentation) -> Res<()> {
        let (realm, m) = (realm.to_owned(), m.clone());
        self.run_write(move |c, _| {
            let id = realm_id(c, &realm)?;
            diesel::insert_into(idp_mappers::table).values(mapper_row(&id, &m)?).execute(c).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn update_mapper(&self, realm: &str, m: &IdentityProviderMapperRepresentation) -> Res<()> {
        let (realm, m) = (realm.to_owned(), m.clone());
        self.run_write(move |c, _| {
            let id = realm_id(c, &realm)?;
            let row = mapper_row(&id, &m)?;
            let n = diesel::update(
                idp_mappers::table.filter(idp_mappers::realm_id.eq(&id).and(idp_mappers::id.eq(&row.id))),
            )
            .set(&row)
            .execute(c)
            .map_err(db_err)?;
            if n == 0 {
                return Err(StoreError::NotFound("mapper not found".into()));
            }
            Ok(())
        })
        .await
    }

    async fn delete_mapper(&self, realm: &str, alias: &str, mapper: &str) -> Res<()> {
        let (realm, alias, mapper) = (realm.to_owned(), alias.to_owned(), mapper.to_owned());
        self.run_write(move |c, _| {
            let id = realm_id(c, &realm)?;
            diesel::delete(idp_mappers::table.filter(
                idp_mappers::realm_id.eq(&id).and(idp_mappers::idp_alias.eq(&alias)).and(idp_mappers::id.eq(&mapper)),
            ))
            .execute(c)
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn list_roles(&self, realm: &str) -> Res<Vec<RoleRepresentation>> {
        let realm = realm.to_owned();
        self.run(move |c, _| {
            let id = realm_id(c, &realm)?;
            let rows: Vec<RoleRow> = realm_roles::table
                .filter(realm_roles::realm_id.eq(&id))
                .order(realm_roles::name)
                .select(RoleRow::as_select())
                .load(c)
                .map_err(db_err)?;
            Ok(rows.into_iter().map(role_from_row).collect())
        })
        .await
    }

    async fn create_role(&self, realm: &str, role: &RoleRepresentation) -> Res<()> {
        let (realm, role) = (realm.to_owned(), role.clone());
        self.run_write(move |c, _| {
            let id = realm_id(c, &realm)?;
            diesel::insert_into(realm_roles::table).values(role_row(&id, &role)).execute(c).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn search_users(&self, realm: &str, q: &UserQuery) -> Res<Vec<UserRepresentation>> {
        let (realm, q) = (realm.to_owned(), q.clone());
        self.run(move |c, _| {
            let id = realm_id(c, &realm)?;
            let like = |s: &str| {
                let escaped = s.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                format!("%{escaped}%")
            };
            let mut query = users::table.filter(users::realm_id.eq(&id)).into_boxed();
            if let Some(u) = q.username.as_deref().filter(|s| !s.is_empty()) {
                query = if q.exact {
                    query.filter(users::username.eq(u.to_lowercase()))
                } else {
                    query.filter(users::username.like(like(u)).escape('\\'))
                };
            }
            if let Some(e) = q.email.as_deref().filter(|s| !s.is_empty()) {
                query = if q.exact {
                    query.filter(users::email.eq(e.to_lowercase()))
                } else {
                    query.filter(users::email.like(like(e)).escape('\\'))
                };
            }
            // An exact lookup is answered from the (realm, email) or (realm,
            // username) index; ordering it would let SQLite walk the username
            // index instead, row by row.
            if !q.exact {
                query = query.order(users::username);
            }
            let rows: Vec<UserRow> =
                query.offset(q.first).limit(q.max).select(UserRow::as_select()).load(c).map_err(db_err)?;
            rows.into_iter().map(user_from_row).collect()
        })
        .await
    }

    async fn get_user(&self, realm: &str, user: &str) -> Res<Option<UserRepresentation>> {
        let (realm, user) = (realm.to_owned(), user.to_owned());
        self.run(move |c, _| {
            let id = realm_id(c, &realm)?;
            let row = users::table
                .filter(users::realm_id.eq(&id).and(users::id.eq(&user)))
                .select(UserRow::as_select())
                .first(c)
                .optional()
                .map_err(db_err)?;
            row.map(user_from_row).transpose()
        })
        .await
    }

    async fn create_user(&self, realm: &str, user: &UserRepresentation) -> Res<()> {
        let (realm, user) = (realm.to_owned(), user.clone());
        self.run_write(move |c, _| {
            let id = realm_id(c, &realm)?;
            diesel::insert_into(users::table).values(user_row(&id, &user)?).execute(c).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn update_user(&self, realm: &str, user: &UserRepresentation) -> Res<()> {
        let (realm, user) = (realm.to_owned(), user.clone());
        self.run_write(move |c, _| {
            let id = realm_id(c, &realm)?;
            let row = user_row(&id, &user)?;
            let n = diesel::update(users::table.filter(users::realm_id.eq(&id).and(users::id.eq(&row.id))))
                .set(&row)
                .execute(c)
                .map_err(db_err)?;
            if n == 0 {
                return Err(StoreError::NotFound("user not found".into()));
            }
            Ok(())
        })
        .await
    }

    async fn delete_user(&self, realm: &str, user: &str) -> Res<()> {
        let (realm, user) = (realm.to_owned(), user.to_owned());
        self.tx(move |c, _| {
            let id = realm_id(c, &realm)?;
            diesel::delete(user_role_mappings::table.filter(user_role_mappings::user_id.eq(&user)))
                .execute(c)
                .map_err(db_err)?;
            diesel::delete(federated_identities::table.filter(federated_identities::user_id.eq(&user)))
                .execute(c)
                .map_err(db_err)?;
            diesel::delete(users::table.filter(users::realm_id.eq(&id).and(users::id.eq(&user))))
                .execute(c)
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn user_roles(&self, realm: &str, user: &str) -> Res<Vec<RoleRepresentation>> {
        let (realm, user) = (realm.to_owned(), user.to_owned());
        self.run(move |c, _| {
            let id = realm_id(c, &realm)?;
            let rows: Vec<RoleRow> = user_role_mappings::table
                .inner_join(realm_roles::table)
                .filter(user_role_mappings::user_id.eq(&user).and(realm_roles::realm_id.eq(&id)))
                .order(realm_roles::name)
                .select(RoleRow::as_select())
                .load(c)
                .map_err(db_err)?;
            Ok(rows.into_iter().map(role_from_row).collect())
        })
        .await
    }

    async fn grant_roles(&self, realm: &str, user: &str, names: &[String]) -> Res<()> {
        let (realm, user, names) = (realm.to_owned(), user.to_owned(), names.to_vec());
        self.tx(move |c, _| {
            let id = realm_id(c, &realm)?;
            grant(c, &id, &user, &names)
        })
        .await
    }

    async fn revoke_roles(&self, realm: &str, user: &str, names: &[String]) -> Res<()> {
        let (realm, user, names) = (realm.to_owned(), user.to_owned(), names.to_vec());
        self.tx(move |c, _| {
            let id = realm_id(c, &realm)?;
            let role_ids = realm_roles::table
                .filter(realm_roles::realm_id.eq(&id).and(realm_roles::name.eq_any(&names)))
                .select(realm_roles::id);
            diesel::delete(
                user_role_mappings::table
                    .filter(user_role_mappings::user_id.eq(&user).and(user_role_mappings::role_id.eq_any(role_ids))),
            )
            .execute(c)
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn list_links(&self, realm: &str, user: &str) -> Res<Vec<FederatedIdentityRepresentation>> {
        let (realm, user) = (realm.to_owned(), user.to_owned());
        self.run(move |c, _| {
            let id = realm_id(c, &realm)?;
            let rows: Vec<LinkRow> = federated_identities::table
                .filter(federated_identities::realm_id.eq(&id).and(federated_identities::user_id.eq(&user)))
                .order(federated_identities::idp_alias)
                .select(LinkRow::as_select())
                .load(c)
                .map_err(db_err)?;
            Ok(rows
                .into_iter()
                .map(|r| FederatedIdentityRepresentation {
                    identity_provider: Some(r.idp_alias),
                    user_id: Some(r.upstream_subject),
                    user_name: r.upstream_username,
                    ..Default::default()
                })
                .collect())
        })
        .await
    }

    async fn create_link(
        &self,
        realm: &str,
        user: &str,
        link: &FederatedIdentityRepresentation,
        token: Option<&Secret>,
    ) -> Res<()> {
        let (realm, user, link) = (realm.to_owned(), user.to_owned(), link.clone());
        let token = token.map(Secret::duplicate);
        self.run_write(move |c, key| {
            let id = realm_id(c, &realm)?;
            diesel::insert_into(federated_identities::table)
                .values(link_row(key, &id, &user, &link, token.as_ref())?)
                .execute(c)
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn create_linked_user(
        &self,
        realm: &str,
        user: &UserRepresentation,
        link: &FederatedIdentityRepresentation,
        token: Option<&Secret>,
    ) -> Res<bool> {
        let (realm, mut user, link) = (realm.to_owned(), user.clone(), link.clone());
        let token = token.map(Secret::duplicate);
        self.tx(move |c, key| {
            let id = realm_id(c, &realm)?;
            let mut unverified = false;
            if let (Some(email), Some(true)) = (user.email.clone(), user.email_verified) {
                let taken: i64 = users::table
                    .filter(users::realm_id.eq(&id).and(users::email.eq(&email)))
                    .count()
                    .get_result(c)
                    .map_err(db_err)?;
                if taken > 0 {
                    user.email_verified = Some(false);
                    unverified = true;
                }
            }
            diesel::insert_into(users::table).values(user_row(&id, &user)?).execute(c).map_err(db_err)?;
            let user_id = user.id.clone().unwrap_or_default();
            diesel::insert_into(federated_identities::table)
                .values(link_row(key, &id, &user_id, &link, token.as_ref())?)
                .execute(c)
                .map_err(db_err)?;
            Ok(unverified)
        })
        .await
    }

    async fn delete_link(&self, realm: &str, user: &str, alias: &str) -> Res<()> {
        let (realm, user, alias) = (realm.to_owned(), user.to_owned(), alias.to_owned());
        self.run_write(move |c, _| {
            let id = realm_id(c, &realm)?;
            diesel::delete(
                federated_identities::table.filter(
                    federated_identities::realm_id
                        .eq(&id)
                        .and(federated_identities::user_id.eq(&user))
                        .and(federated_identities::idp_alias.eq(&alias)),
                ),
            )
            .execute(c)
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn find_user_by_link(&self, realm: &str, alias: &str, subject: &str) -> Res<Option<UserRepresentation>> {
        let (realm, alias, subject) = (realm.to_owned(), alias.to_owned(), subject.to_owned());
        self.run(move |c, _| {
            let id = realm_id(c, &realm)?;
            let user_id: Option<String> = federated_identities::table
                .filter(
                    federated_identities::realm_id
                        .eq(&id)
                        .and(federated_identities::idp_alias.eq(&alias))
                        .and(federated_identities::upstream_subject.eq(&subject)),
                )
                .select(federated_identities::user_id)
                .first(c)
                .optional()
                .map_err(db_err)?;
            let Some(user_id) = user_id else { return Ok(None) };
            let row = users::table
                .filter(users::id.eq(&user_id))
                .select(UserRow::as_select())
                .first(c)
                .optional()
                .map_err(db_err)?;
            row.map(user_from_row).transpose()
        })
        .await
    }

    async fn signing_keys(&self, realm: &str) -> Res<Vec<SigningKey>> {
        let realm = realm.to_owned();
        self.run(move |c, key| {
            let id = realm_id(c, &realm)?;
            let rows: Vec<KeyRow> = realm_keys::table
                .filter(realm_keys::realm_id.eq(&id))
                .order(realm_keys::created_at.desc())
                .select(KeyRow::as_select())
                .load(c)
                .map_err(db_err)?;
            rows.into_iter()
                .map(|r| {
                    Ok(SigningKey {
                        private_pem: key.decrypt(&r.private_enc)?,
                        public_jwk: from_json(&r.public_jwk)?,
                        kid: r.kid,
                        alg: r.alg,
                        created_at: r.created_at,
                        active: r.active,
                    })
                })
                .collect()
        })
        .await
    }

    async fn audit(&self, e: AuditEvent) -> Res<()> {
        let details = to_json(&e.details)?;
        self.run_write(move |c, _| {
            diesel::insert_into(audit_events::table)
                .values(AuditRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    realm_name: e.realm,
                    kind: e.kind,
                    resource: e.resource,
                    details,
                    occurred_at: e.time,
                })
                .execute(c)
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}
