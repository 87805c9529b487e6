//! [`RealmStore`] on [`DbStore`]: realms, and whole realms (a bundle of
//! clients, providers, roles, users and keys) written or removed at once.

use async_trait::async_trait;
use diesel::prelude::*;
use federa_broker::repr::RealmRepresentation;
use federa_broker::store::{RealmBundle, RealmRecord};
use federa_broker::{RealmStore, StoreError};

use super::clients::client_row;
use super::errors::db_err;
use super::keys::key_row;
use super::upstreams::{idp_row, mapper_row};
use super::users::{insert_user, role_row};
use super::{from_json, now, realm_id, to_json, DbStore, Res};
use crate::crypto::MasterKey;
use crate::db::Conn;
use crate::rows::*;
use crate::schema::*;

/// A realm row as the broker's record.
fn realm_row_to_record(row: RealmRow) -> Res<RealmRecord> {
    Ok(RealmRecord { repr: from_json(&row.repr)?, managed_by: row.managed_by, source_digest: row.source_digest })
}

/// Inserts a bundle's clients, providers and mappers: the part of a realm a
/// realm file replaces.
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

#[async_trait]
impl RealmStore for DbStore {
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
                diesel::insert_into(realm_keys::table).values(key_row(key, &id, k)?).execute(c).map_err(db_err)?;
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
            diesel::delete(user_client_roles::table.filter(user_client_roles::realm_id.eq(&id)))
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
}
