//! [`UpstreamStore`] on [`DbStore`]: a realm's upstream identity providers
//! (their client secrets encrypted at rest) and their mappers.

use async_trait::async_trait;
use diesel::prelude::*;
use federa_broker::repr::{IdentityProviderMapperRepresentation, IdentityProviderRepresentation};
use federa_broker::{StoreError, UpstreamStore};

use super::errors::db_err;
use super::{from_json, realm_id, to_json, DbStore, Res};
use crate::crypto::MasterKey;
use crate::rows::*;
use crate::schema::*;

pub(super) fn idp_row(key: &MasterKey, realm_id: &str, p: &IdentityProviderRepresentation) -> Res<IdpRow> {
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

pub(super) fn mapper_row(realm_id: &str, m: &IdentityProviderMapperRepresentation) -> Res<MapperRow> {
    Ok(MapperRow {
        id: m.id.clone().unwrap_or_default(),
        realm_id: realm_id.to_owned(),
        idp_alias: m.identity_provider_alias.clone().unwrap_or_default(),
        name: m.name.clone().unwrap_or_default(),
        repr: to_json(m)?,
    })
}

#[async_trait]
impl UpstreamStore for DbStore {
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
}
