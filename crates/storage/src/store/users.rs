//! [`UserStore`] on [`DbStore`]: a realm's roles and users, the users' role
//! grants and their links to upstream accounts (tokens encrypted at rest).

use async_trait::async_trait;
use diesel::prelude::*;
use federa_broker::repr::{FederatedIdentityRepresentation, RoleRepresentation, UserRepresentation};
use federa_broker::store::{UserImport, UserQuery};
use federa_broker::{StoreError, UserStore};
use federa_protocol::Secret;

use super::errors::db_err;
use super::{from_json, realm_id, to_json, DbStore, Res};
use crate::crypto::MasterKey;
use crate::db::Conn;
use crate::rows::*;
use crate::schema::*;

pub(super) fn role_row(realm_id: &str, r: &RoleRepresentation) -> RoleRow {
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

pub(super) fn user_row(realm_id: &str, u: &UserRepresentation) -> Res<UserRow> {
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

pub(super) fn user_from_row(r: UserRow) -> Res<UserRepresentation> {
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

/// The user linked to an upstream subject at a provider of the realm.
pub(super) fn linked_user_id(c: &mut Conn, realm_id: &str, alias: &str, subject: &str) -> Res<Option<String>> {
    federated_identities::table
        .filter(
            federated_identities::realm_id
                .eq(realm_id)
                .and(federated_identities::idp_alias.eq(alias))
                .and(federated_identities::upstream_subject.eq(subject)),
        )
        .select(federated_identities::user_id)
        .first(c)
        .optional()
        .map_err(db_err)
}

pub(super) fn link_row(
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

/// Grants client roles (clientId, role name) to a user; granted ones are kept.
pub(super) fn grant_client(c: &mut Conn, realm_id: &str, user_id: &str, roles: &[(String, String)]) -> Res<()> {
    for (client, role) in roles {
        let exists = user_client_roles::table
            .filter(
                user_client_roles::user_id
                    .eq(user_id)
                    .and(user_client_roles::client_id.eq(client))
                    .and(user_client_roles::role_name.eq(role)),
            )
            .count()
            .get_result::<i64>(c)
            .map_err(db_err)?;
        if exists == 0 {
            diesel::insert_into(user_client_roles::table)
                .values((
                    user_client_roles::user_id.eq(user_id),
                    user_client_roles::realm_id.eq(realm_id),
                    user_client_roles::client_id.eq(client),
                    user_client_roles::role_name.eq(role),
                ))
                .execute(c)
                .map_err(db_err)?;
        }
    }
    Ok(())
}

/// Replaces the stored upstream tokens of a user's link; whether it exists.
pub(super) fn set_token(
    c: &mut Conn,
    key: &MasterKey,
    realm_id: &str,
    user_id: &str,
    alias: &str,
    token: &Secret,
) -> Res<bool> {
    let sealed = key.encrypt(token.expose())?;
    let n = diesel::update(
        federated_identities::table.filter(
            federated_identities::realm_id
                .eq(realm_id)
                .and(federated_identities::user_id.eq(user_id))
                .and(federated_identities::idp_alias.eq(alias)),
        ),
    )
    .set(federated_identities::token_enc.eq(Some(sealed)))
    .execute(c)
    .map_err(db_err)?;
    Ok(n > 0)
}

/// Whether the user has a link to the provider.
pub(super) fn has_link(c: &mut Conn, realm_id: &str, user_id: &str, alias: &str) -> Res<bool> {
    let n: i64 = federated_identities::table
        .filter(
            federated_identities::realm_id
                .eq(realm_id)
                .and(federated_identities::user_id.eq(user_id))
                .and(federated_identities::idp_alias.eq(alias)),
        )
        .count()
        .get_result(c)
        .map_err(db_err)?;
    Ok(n > 0)
}

pub(super) fn insert_user(c: &mut Conn, key: &MasterKey, realm_id: &str, u: &UserImport) -> Res<()> {
    diesel::insert_into(users::table).values(user_row(realm_id, &u.user)?).execute(c).map_err(db_err)?;
    let user_id = u.user.id.clone().unwrap_or_default();
    grant(c, realm_id, &user_id, &u.realm_roles)?;
    grant_client(c, realm_id, &user_id, &u.client_roles)?;
    for l in &u.links {
        diesel::insert_into(federated_identities::table)
            .values(link_row(key, realm_id, &user_id, l, None)?)
            .execute(c)
            .map_err(db_err)?;
    }
    Ok(())
}

#[async_trait]
impl UserStore for DbStore {
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
            diesel::delete(user_client_roles::table.filter(user_client_roles::user_id.eq(&user)))
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
            let user_id = linked_user_id(c, &id, &alias, &subject)?;
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

    async fn link_token(&self, realm: &str, user: &str, alias: &str) -> Res<Option<Secret>> {
        let (realm, user, alias) = (realm.to_owned(), user.to_owned(), alias.to_owned());
        self.run(move |c, key| {
            let id = realm_id(c, &realm)?;
            let sealed: Option<Option<String>> = federated_identities::table
                .filter(
                    federated_identities::realm_id
                        .eq(&id)
                        .and(federated_identities::user_id.eq(&user))
                        .and(federated_identities::idp_alias.eq(&alias)),
                )
                .select(federated_identities::token_enc)
                .first(c)
                .optional()
                .map_err(db_err)?;
            Ok(sealed.flatten().map(|s| key.decrypt(&s)).transpose()?)
        })
        .await
    }

    async fn set_link_token(&self, realm: &str, user: &str, alias: &str, token: &Secret) -> Res<bool> {
        let (realm, user, alias, token) = (realm.to_owned(), user.to_owned(), alias.to_owned(), token.duplicate());
        self.run_write(move |c, key| {
            let id = realm_id(c, &realm)?;
            set_token(c, key, &id, &user, &alias, &token)
        })
        .await
    }

    async fn user_client_roles(&self, realm: &str, user: &str, client: &str) -> Res<Vec<String>> {
        let (realm, user, client) = (realm.to_owned(), user.to_owned(), client.to_owned());
        self.run(move |c, _| {
            let id = realm_id(c, &realm)?;
            user_client_roles::table
                .filter(
                    user_client_roles::realm_id
                        .eq(&id)
                        .and(user_client_roles::user_id.eq(&user))
                        .and(user_client_roles::client_id.eq(&client)),
                )
                .order(user_client_roles::role_name)
                .select(user_client_roles::role_name)
                .load(c)
                .map_err(db_err)
        })
        .await
    }

    async fn grant_client_roles(&self, realm: &str, user: &str, client: &str, names: &[String]) -> Res<()> {
        let (realm, user) = (realm.to_owned(), user.to_owned());
        let roles: Vec<(String, String)> = names.iter().map(|n| (client.to_owned(), n.clone())).collect();
        self.tx(move |c, _| {
            let id = realm_id(c, &realm)?;
            let exists: i64 = users::table
                .filter(users::realm_id.eq(&id).and(users::id.eq(&user)))
                .count()
                .get_result(c)
                .map_err(db_err)?;
            if exists == 0 {
                return Err(StoreError::NotFound("user not found".into()));
            }
            grant_client(c, &id, &user, &roles)
        })
        .await
    }

    async fn revoke_client_roles(&self, realm: &str, user: &str, client: &str, names: &[String]) -> Res<()> {
        let (realm, user, client, names) = (realm.to_owned(), user.to_owned(), client.to_owned(), names.to_vec());
        self.run_write(move |c, _| {
            let id = realm_id(c, &realm)?;
            diesel::delete(
                user_client_roles::table.filter(
                    user_client_roles::realm_id
                        .eq(&id)
                        .and(user_client_roles::user_id.eq(&user))
                        .and(user_client_roles::client_id.eq(&client))
                        .and(user_client_roles::role_name.eq_any(&names)),
                ),
            )
            .execute(c)
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }
}
