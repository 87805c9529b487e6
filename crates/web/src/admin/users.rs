//! `/admin/realms/{realm}/users`: users, their upstream links, realm role
//! mappings and sessions.

use crate::body::Body;
use actix_web::{web, HttpResponse};
use federa_broker::admin::user_session_representation;
use federa_broker::repr::{FederatedIdentityRepresentation, RoleRepresentation, UserRepresentation};
use federa_broker::store::UserQuery;
use federa_broker::BrokerError;
use serde::Deserialize;

use super::{created, location};
use crate::auth::Admin;
use crate::error::WebError;
use crate::state::AppState;

/// The page size when `max` is absent, as in Keycloak.
const DEFAULT_MAX: i64 = 100;

/// Registers the user routes inside the `/admin/realms` scope.
pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    const USER: &str = "/{realm}/users/{id}";
    cfg.service(web::resource("/{realm}/users").get(search).post(create))
        .service(web::resource(USER).get(get).put(update).delete(delete))
        .service(web::resource(format!("{USER}/federated-identity")).get(list_links))
        .service(web::resource(format!("{USER}/federated-identity/{{alias}}")).post(create_link).delete(delete_link))
        .service(web::resource(format!("{USER}/role-mappings/realm")).get(roles).post(grant).delete(revoke))
        .service(
            web::resource(format!("{USER}/role-mappings/clients/{{client}}"))
                .get(client_roles)
                .post(grant_client)
                .delete(revoke_client),
        )
        .service(web::resource(format!("{USER}/sessions")).get(sessions))
        .service(web::resource(format!("{USER}/logout")).post(logout));
}

/// The query of `GET .../users`. Numbers arrive as strings so that a bad one
/// is refused with a message naming its parameter.
#[derive(Debug, Default, Deserialize)]
struct SearchParams {
    username: Option<String>,
    email: Option<String>,
    first: Option<String>,
    max: Option<String>,
    exact: Option<String>,
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn integer(field: &str, value: Option<&str>, default: i64) -> Result<i64, WebError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| WebError::invalid(field, format!("{v:?} is not an integer"))),
    }
}

impl TryFrom<SearchParams> for UserQuery {
    type Error = WebError;

    fn try_from(p: SearchParams) -> Result<Self, WebError> {
        Ok(UserQuery {
            first: integer("first", p.first.as_deref(), 0)?,
            max: integer("max", p.max.as_deref(), DEFAULT_MAX)?,
            username: non_empty(p.username),
            email: non_empty(p.email),
            exact: match p.exact.as_deref() {
                None | Some("" | "false") => false,
                Some("true") => true,
                Some(v) => return Err(WebError::invalid("exact", format!("{v:?} must be true or false"))),
            },
        })
    }
}

async fn search(
    _: Admin,
    st: web::Data<AppState>,
    realm: web::Path<String>,
    params: web::Query<SearchParams>,
) -> Result<HttpResponse, WebError> {
    let query = UserQuery::try_from(params.into_inner())?;
    Ok(HttpResponse::Ok().json(st.admin.search_users(&realm, query).await?))
}

async fn create(
    _: Admin,
    st: web::Data<AppState>,
    realm: web::Path<String>,
    body: Body<UserRepresentation>,
) -> Result<HttpResponse, WebError> {
    let id = st.admin.create_user(&realm, body.into_inner()).await?;
    Ok(created(location(&st, &realm, &["users", &id])))
}

async fn get(_: Admin, st: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(st.admin.get_user(&realm, &id).await?))
}

async fn update(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Body<UserRepresentation>,
) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    st.admin.update_user(&realm, &id, body.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn delete(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    st.admin.delete_user(&realm, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_links(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(st.admin.list_links(&realm, &id).await?))
}

async fn create_link(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    body: Body<FederatedIdentityRepresentation>,
) -> Result<HttpResponse, WebError> {
    let (realm, id, alias) = path.into_inner();
    st.admin.create_link(&realm, &id, &alias, body.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn delete_link(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, WebError> {
    let (realm, id, alias) = path.into_inner();
    st.admin.delete_link(&realm, &id, &alias).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn roles(_: Admin, st: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    Ok(HttpResponse::Ok().json(st.admin.user_roles(&realm, &id).await?))
}

async fn grant(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Body<Vec<RoleRepresentation>>,
) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    st.admin.grant_roles(&realm, &id, &body).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn revoke(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: Body<Vec<RoleRepresentation>>,
) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    st.admin.revoke_roles(&realm, &id, &body).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET .../role-mappings/clients/{client}`: the user's roles of a client
/// (its internal id, or its clientId: `broker`).
async fn client_roles(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, WebError> {
    let (realm, id, client) = path.into_inner();
    Ok(HttpResponse::Ok().json(st.admin.user_client_roles(&realm, &id, &client).await?))
}

async fn grant_client(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    body: Body<Vec<RoleRepresentation>>,
) -> Result<HttpResponse, WebError> {
    let (realm, id, client) = path.into_inner();
    st.admin.grant_client_roles(&realm, &id, &client, &body).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn revoke_client(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    body: Body<Vec<RoleRepresentation>>,
) -> Result<HttpResponse, WebError> {
    let (realm, id, client) = path.into_inner();
    st.admin.revoke_client_roles(&realm, &id, &client, &body).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET .../sessions`: the user's live SSO sessions, oldest first
/// (Keycloak's UserSessionRepresentation).
async fn sessions(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    let user = st.admin.get_user(&realm, &id).await?;
    let found = st.broker.list_user_sessions(&realm, &id).await.map_err(BrokerError::from)?;
    let list: Vec<_> = found.iter().map(|s| user_session_representation(&user, s)).collect();
    Ok(HttpResponse::Ok().json(list))
}

/// `POST .../logout`: ends all the user's SSO sessions; their tokens stop
/// working at once.
async fn logout(
    _: Admin,
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, WebError> {
    let (realm, id) = path.into_inner();
    st.admin.get_user(&realm, &id).await?;
    let ended = st.broker.end_user_sessions(&realm, &id).await.map_err(BrokerError::from)?;
    log::info!("realm {realm:?}: the admin API ended {ended} SSO session(s) of user {id:?}");
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn params(first: Option<&str>, max: Option<&str>) -> SearchParams {
        SearchParams { first: first.map(Into::into), max: max.map(Into::into), ..Default::default() }
    }

    #[test]
    fn search_parameters_default_and_refuse_by_name() {
        let q = UserQuery::try_from(params(None, None)).unwrap();
        assert_eq!((q.first, q.max), (0, DEFAULT_MAX));
        let q = UserQuery::try_from(params(Some("5"), Some(""))).unwrap();
        assert_eq!((q.first, q.max), (5, DEFAULT_MAX));
        for (p, field) in [(params(Some("x"), None), "first"), (params(None, Some("1.5")), "max")] {
            match UserQuery::try_from(p) {
                Err(WebError::Broker(BrokerError::Invalid { field: f, .. })) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }
}
