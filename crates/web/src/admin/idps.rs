//! `/admin/realms/{realm}/identity-provider/instances`: upstream identity
//! providers and their mappers.

use crate::body::Body;
use actix_web::{web, HttpResponse};
use federa_broker::repr::{IdentityProviderMapperRepresentation, IdentityProviderRepresentation};

use super::{created, location, with_notices};
use crate::auth::Admin;
use crate::error::WebError;
use crate::state::AppState;

/// Registers the provider and mapper routes inside the `/admin/realms` scope.
pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    const BASE: &str = "/{realm}/identity-provider/instances";
    cfg.service(web::resource(BASE).get(list).post(create))
        .service(web::resource(format!("{BASE}/{{alias}}")).get(get).put(update).delete(delete))
        .service(web::resource(format!("{BASE}/{{alias}}/mappers")).get(list_mappers).post(create_mapper))
        .service(
            web::resource(format!("{BASE}/{{alias}}/mappers/{{id}}"))
                .get(get_mapper)
                .put(update_mapper)
                .delete(delete_mapper),
        );
}

async fn list(_: Admin, st: web::Data<AppState>, realm: web::Path<String>) -> Result<HttpResponse, WebError> {
    Ok(HttpResponse::Ok().json(st.admin.list_idps(&realm).await?))
}

async fn create(
    _: Admin,
    st: web::Data<AppState>,
    realm: web::Path<String>,
    body: Body<IdentityProviderRepresentation>,
) -> Result<HttpResponse, WebError> {
    let repr = body.into_inner();
    let notices = federa_broker::model::idp_notices(&repr);
    let alias = st.admin.create_idp(&realm, repr).await?;
    let what = format!("realm {:?} identity provider {alias:?}", realm.as_str());
    Ok(with_notices(created(location(&st, &realm, &["identity-provider", "instances", &alias])), &what, &notices))
}

async fn get(_: Admin, st: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, WebError> {
    let (realm, alias) = path.into_inner();
    Ok(HttpResponse::Ok().json(st.admin.get_idp(&realm, &alias).await?))
}

async fn update(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Body<IdentityProviderRepresentation>,
) -> Result<HttpResponse, WebError> {
    let (realm, alias) = path.into_inner();
    let repr = body.into_inner();
    let notices = federa_broker::model::idp_notices(&repr);
    st.admin.update_idp(&realm, &alias, repr).await?;
    let what = format!("realm {realm:?} identity provider {alias:?}");
    Ok(with_notices(HttpResponse::NoContent().finish(), &what, &notices))
}

async fn delete(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (realm, alias) = path.into_inner();
    st.admin.delete_idp(&realm, &alias).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_mappers(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (realm, alias) = path.into_inner();
    Ok(HttpResponse::Ok().json(st.admin.list_mappers(&realm, &alias).await?))
}

async fn create_mapper(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Body<IdentityProviderMapperRepresentation>,
) -> Result<HttpResponse, WebError> {
    let (realm, alias) = path.into_inner();
    let repr = body.into_inner();
    let notices = federa_broker::model::mapper_notices(&repr);
    let id = st.admin.create_mapper(&realm, &alias, repr).await?;
    let what = format!("realm {realm:?} identity provider {alias:?} mapper {id:?}");
    let resp = created(location(&st, &realm, &["identity-provider", "instances", &alias, "mappers", &id]));
    Ok(with_notices(resp, &what, &notices))
}

async fn get_mapper(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, WebError> {
    let (realm, alias, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(st.admin.get_mapper(&realm, &alias, &id).await?))
}

async fn update_mapper(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    body: Body<IdentityProviderMapperRepresentation>,
) -> Result<HttpResponse, WebError> {
    let (realm, alias, id) = path.into_inner();
    let repr = body.into_inner();
    let notices = federa_broker::model::mapper_notices(&repr);
    st.admin.update_mapper(&realm, &alias, &id, repr).await?;
    let what = format!("realm {realm:?} identity provider {alias:?} mapper {id:?}");
    Ok(with_notices(HttpResponse::NoContent().finish(), &what, &notices))
}

async fn delete_mapper(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, WebError> {
    let (realm, alias, id) = path.into_inner();
    st.admin.delete_mapper(&realm, &alias, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
