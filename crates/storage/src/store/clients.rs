//! [`ClientStore`] on [`DbStore`]: a realm's clients, their secrets
//! encrypted at rest.

use async_trait::async_trait;
use diesel::prelude::*;
use federa_broker::repr::ClientRepresentation;
use federa_broker::{ClientStore, StoreError};

use super::errors::db_err;
use super::{from_json, realm_id, to_json, DbStore, Res};
use crate::crypto::MasterKey;
use crate::rows::*;
use crate::schema::*;

pub(super) fn client_row(key: &MasterKey, realm_id: &str, c: &ClientRepresentation) -> Res<ClientRow> {
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

#[async_trait]
impl ClientStore for DbStore {
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
}
