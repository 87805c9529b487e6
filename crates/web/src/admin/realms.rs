//! `/admin/realms`, `/admin/realms/{realm}` and `/admin/realms/{realm}/roles`.

use crate::body::Body;
use actix_web::{web, HttpResponse};
use federa_broker::repr::{RealmRepresentation, RoleRepresentation};
use federa_broker::RealmSource;

use super::{created, location, with_notices};
use crate::auth::Admin;
use crate::error::WebError;
use crate::state::AppState;

/// `GET /admin/realms`.
pub(super) async fn list(_: Admin, st: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    Ok(HttpResponse::Ok().json(st.admin.list_realms().await?))
}

/// `POST /admin/realms`: the whole representation, nested parts included, in
/// one transaction.
pub(super) async fn create(
    _: Admin,
    st: web::Data<AppState>,
    body: Body<RealmRepresentation>,
) -> Result<HttpResponse, WebError> {
    let repr = body.into_inner();
    let notices = federa_broker::model::realm_notices(&repr);
    let (name, ignored) = st.admin.create_realm(repr, RealmSource::Api).await?;
    if !ignored.is_empty() {
        log::warn!("realm {name}: ignored {} unsupported fields: {}", ignored.len(), ignored.join(", "));
    }
    Ok(with_notices(created(location(&st, &name, &[])), &format!("realm {name:?}"), &notices))
}

/// `GET /admin/realms/{realm}`.
pub(super) async fn get(_: Admin, st: web::Data<AppState>, realm: web::Path<String>) -> Result<HttpResponse, WebError> {
    Ok(HttpResponse::Ok().json(st.admin.get_realm(&realm).await?))
}

/// `PUT /admin/realms/{realm}`: the realm's own fields.
pub(super) async fn update(
    _: Admin,
    st: web::Data<AppState>,
    realm: web::Path<String>,
    body: Body<RealmRepresentation>,
) -> Result<HttpResponse, WebError> {
    let repr = body.into_inner();
    let notices = federa_broker::model::realm_notices(&repr);
    st.admin.update_realm(&realm, repr).await?;
    Ok(with_notices(HttpResponse::NoContent().finish(), &format!("realm {:?}", realm.as_str()), &notices))
}

/// `DELETE /admin/realms/{realm}`.
pub(super) async fn delete(
    _: Admin,
    st: web::Data<AppState>,
    realm: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    st.admin.delete_realm(&realm).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /admin/realms/{realm}/roles`.
pub(super) async fn list_roles(
    _: Admin,
    st: web::Data<AppState>,
    realm: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    Ok(HttpResponse::Ok().json(st.admin.list_roles(&realm).await?))
}

/// `POST /admin/realms/{realm}/roles`.
pub(super) async fn create_role(
    _: Admin,
    st: web::Data<AppState>,
    realm: web::Path<String>,
    body: Body<RoleRepresentation>,
) -> Result<HttpResponse, WebError> {
    let name = st.admin.create_role(&realm, body.into_inner()).await?;
    Ok(created(location(&st, &realm, &["roles", &name])))
}

/// `POST /admin/realms/{realm}/clear-keys-cache` (Keycloak's): forgets the
/// upstream providers' discovery documents and keys this instance cached, so
/// that an upstream's key rotation is picked up at once. Each instance keeps
/// its own copy; behind a load balancer, call every instance (or wait for the
/// hour after which each reads them again, or for the unknown-kid refetch).
pub(super) async fn clear_keys_cache(
    _: Admin,
    st: web::Data<AppState>,
    realm: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    st.admin.get_realm(&realm).await?;
    st.broker.clear_upstream_caches();
    log::info!("realm {:?}: upstream key and discovery caches cleared by an admin", realm.as_str());
    Ok(HttpResponse::NoContent().finish())
}
