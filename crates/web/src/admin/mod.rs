//! The admin API (INTERFACE section 6): Keycloak's paths and JSON under
//! `/admin/realms`. Handlers are thin: they take [`Admin`](crate::Admin),
//! call one `AdminService` operation and shape the answer. Rules live in the
//! broker.

mod clients;
mod idps;
mod import_config;
mod realms;
mod users;

use actix_web::http::header::LOCATION;
use actix_web::{web, HttpResponse};

use crate::state::AppState;

/// Registers every admin route.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/realms")
            .service(web::resource("").get(realms::list).post(realms::create))
            .service(web::resource("/{realm}").get(realms::get).put(realms::update).delete(realms::delete))
            .service(web::resource("/{realm}/roles").get(realms::list_roles).post(realms::create_role))
            .configure(clients::configure)
            .configure(idps::configure)
            .service(web::resource("/{realm}/identity-provider/import-config").post(import_config::import_config))
            .service(web::resource("/{realm}/clear-keys-cache").post(realms::clear_keys_cache))
            .configure(users::configure),
    );
}

/// Encodes a path segment: everything but RFC 3986's unreserved characters is
/// percent-encoded, so names with spaces or slashes make valid URLs.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The absolute URL of an admin resource: `{public_url}/admin/realms/{realm}/...`.
fn location(st: &AppState, realm: &str, rest: &[&str]) -> String {
    let mut url = format!("{}/admin/realms/{}", st.public_url, encode_segment(realm));
    for segment in rest {
        url.push('/');
        url.push_str(&encode_segment(segment));
    }
    url
}

/// Names, in the answer, each setting that was stored but has no effect yet:
/// one `Warning: 299 federa "<field>: <what>"` header per setting (RFC 9111
/// section 5.5's "miscellaneous persistent warning"), so an admin sees at
/// once what Federa will not do. The status and body stay Keycloak's.
fn with_notices(mut resp: HttpResponse, what: &str, notices: &[federa_broker::model::Notice]) -> HttpResponse {
    for n in notices {
        log::warn!("{what}: {n}");
        let text = n.to_string().replace('\\', "\\\\").replace('"', "\\\"");
        let value = format!("299 federa \"{text}\"");
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&value) {
            resp.headers_mut().append(actix_web::http::header::WARNING, v);
        }
    }
    resp
}

/// `201 Created` with a `Location` header and no body, as Keycloak answers.
fn created(location: String) -> HttpResponse {
    HttpResponse::Created().insert_header((LOCATION, location)).finish()
}

#[cfg(test)]
mod tests {
    use super::encode_segment;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode_segment("my realm"), "my%20realm");
        assert_eq!(encode_segment("a/b?c#d%e"), "a%2Fb%3Fc%23d%25e");
        assert_eq!(encode_segment("é"), "%C3%A9");
        assert_eq!(encode_segment("Az09-._~"), "Az09-._~");
    }
}
