//! Row structs. They never leave this crate: `store` turns them into the
//! broker's representations.

use diesel::prelude::*;

use crate::schema::*;

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = realms)]
pub(crate) struct RealmRow {
    pub id: String,
    pub name: String,
    pub repr: String,
    pub managed_by: Option<String>,
    pub source_digest: Option<String>,
    pub created_at: i64,
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = clients, treat_none_as_null = true)]
pub(crate) struct ClientRow {
    pub id: String,
    pub realm_id: String,
    pub client_id: String,
    pub repr: String,
    pub secret_enc: Option<String>,
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = identity_providers, treat_none_as_null = true)]
pub(crate) struct IdpRow {
    pub id: String,
    pub realm_id: String,
    pub alias: String,
    pub repr: String,
    pub client_secret_enc: Option<String>,
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = idp_mappers)]
pub(crate) struct MapperRow {
    pub id: String,
    pub realm_id: String,
    pub idp_alias: String,
    pub name: String,
    pub repr: String,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = realm_roles)]
pub(crate) struct RoleRow {
    pub id: String,
    pub realm_id: String,
    pub name: String,
    pub description: Option<String>,
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = users, treat_none_as_null = true)]
pub(crate) struct UserRow {
    pub id: String,
    pub realm_id: String,
    pub username: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub enabled: bool,
    pub created_timestamp: i64,
    pub attributes: String,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = federated_identities)]
pub(crate) struct LinkRow {
    pub user_id: String,
    pub realm_id: String,
    pub idp_alias: String,
    pub upstream_subject: String,
    pub upstream_username: Option<String>,
    pub token_enc: Option<String>,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = realm_keys)]
pub(crate) struct KeyRow {
    pub kid: String,
    pub realm_id: String,
    pub alg: String,
    pub private_enc: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub active: bool,
}

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
pub(crate) struct AuditRow {
    pub id: String,
    pub realm_name: Option<String>,
    pub kind: String,
    pub resource: String,
    pub details: String,
    pub occurred_at: i64,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = session_entries)]
pub(crate) struct SessionRow {
    pub key: String,
    pub value: String,
    pub expires_at: i64,
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = session_index)]
pub(crate) struct IndexRow {
    pub key: String,
    pub member: String,
    pub expires_at: i64,
}
