//! `/admin/realms/{realm}/clients`: downstream applications and their secrets.

use crate::body::Body;
use actix_web::{web, HttpResponse};
use federa_broker::repr::{ClientRepresentation, CredentialRepresentation};
use federa_protocol::Secret;
use serde::Deserialize;

use super::{created, location, with_notices};
use crate::auth::Admin;
use crate::error::WebError;
use crate::state::AppState;

/// Registers the client routes inside the `/admin/realms` scope.
pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/{realm}/clients").get(list).post(create))
        .service(web::resource("/{realm}/clients/{id}").get(get).put(update).delete(delete))
        .service(web::resource("/{realm}/clients/{id}/client-secret").get(secret).post(regenerate_secret));
}

/// The query of `GET .../clients`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    client_id: Option<String>,
}

async fn list(
    _: Admin,
    st: web::Data<AppState>,
    realm: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, WebError> {
    let client_id = query.client_id.as_deref().filter(|c| !c.is_empty());
    Ok(HttpResponse::Ok().json(st.admin.list_clients(&realm, client_id).await?))
}

async fn create(
    _: Admin,
    st: web::Data<AppState>,
    realm: web::Path<String>,
    body: Body<ClientRepresentation>,
) -> Result<HttpResponse, WebError> {
    let repr = body.into_inner();
    let notices = federa_broker::model::client_notices(&repr);
    let what = format!("realm {:?} client {:?}", realm.as_str(), repr.client_id.as_deref().unwrap_or_default());
    let id = st.admin.create_client(&realm, repr).await?;
    Ok(with_notices(created(location(&st, &realm, &["clients", &id])), &what, &notices))
}

async fn get(_: Admin, st: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(st.admin.get_client(&realm, &id).await?))
}

async fn update(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Body<ClientRepresentation>,
) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    let repr = body.into_inner();
    let notices = federa_broker::model::client_notices(&repr);
    let what = format!("realm {realm:?} client {:?}", repr.client_id.as_deref().unwrap_or_default());
    st.admin.update_client(&realm, &id, repr).await?;
    Ok(with_notices(HttpResponse::NoContent().finish(), &what, &notices))
}

async fn delete(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    st.admin.delete_client(&realm, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Keycloak's answer to both `client-secret` methods.
fn credential(secret: &Secret) -> HttpResponse {
    HttpResponse::Ok().json(CredentialRepresentation { kind: "secret".into(), value: secret.expose().to_owned() })
}

async fn secret(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    Ok(credential(&st.admin.client_secret(&realm, &id).await?))
}

async fn regenerate_secret(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    Ok(credential(&st.admin.regenerate_client_secret(&realm, &id).await?))
}
