//! `POST /admin/realms/{realm}/identity-provider/import-config`: reads an
//! upstream's OpenID Provider configuration (OpenID Connect Discovery 1.0
//! section 4) and answers it as Keycloak's identity-provider config map.
//! The document is fetched from `fromUrl`, or given in the body as `file`
//! (a saved discovery document: its JSON text, as Keycloak's upload sends
//! it, or the JSON object itself); the answer of a `file` has no
//! `metadataDescriptorUrl`, since there is no URL to read again.

use crate::body::Body;
use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use federa_broker::validate::check_http_url;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::Admin;
use crate::error::WebError;
use crate::state::AppState;

/// How long the upstream may take to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest discovery document read; real ones are a few kilobytes.
const MAX_DOCUMENT: usize = 1024 * 1024;

/// The provider types whose configuration can be imported.
const PROVIDERS: &[&str] = &["oidc", "keycloak-oidc"];

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ImportConfigRequest {
    provider_id: Option<String>,
    from_url: Option<String>,
    file: Option<Value>,
}

fn from_url_error(message: impl Into<String>) -> WebError {
    WebError::invalid("fromUrl", message)
}

/// The innermost cause of a failed request, which is the one that says what
/// went wrong ("connection refused", "dns error"), on one line.
fn root_cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} seconds", FETCH_TIMEOUT.as_secs());
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Fetches the discovery document as a JSON object.
async fn fetch(st: &AppState, url: &str) -> Result<Map<String, Value>, WebError> {
    let mut response = st
        .http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| from_url_error(format!("could not fetch {url}: {}", root_cause(&e))))?;
    let status = response.status();
    if !status.is_success() {
        return Err(from_url_error(format!("{url} answered HTTP {}", status.as_u16())));
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| from_url_error(format!("could not read {url}: {}", root_cause(&e))))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(from_url_error(format!("{url} answered more than {} KiB", MAX_DOCUMENT >> 10)));
        }
        body.extend_from_slice(&chunk);
    }
    match serde_json::from_slice(&body) {
        Ok(Value::Object(document)) => Ok(document),
        Ok(_) => Err(from_url_error(format!("{url} did not answer a JSON object"))),
        Err(e) => Err(from_url_error(format!("{url} did not answer JSON: {e}"))),
    }
}

/// Turns a discovery document into Keycloak's config map.
/// `from_url` is where it was read, when it was; errors name `fromUrl` or `file`.
fn config_map(document: &Map<String, Value>, from_url: Option<&str>) -> Result<BTreeMap<String, String>, WebError> {
    let (field, source) = match from_url {
        Some(u) => ("fromUrl", format!("the document at {u}")),
        None => ("file", "the document".to_owned()),
    };
    let invalid = |message: String| WebError::invalid(field, message);
    let text = |key: &str| -> Result<Option<String>, WebError> {
        match document.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(format!("{source} has a {key} that is not a string"))),
        }
    };
    let mut config = BTreeMap::new();
    // OpenID Connect Discovery 1.0 section 3 requires these three.
    for (key, name) in [("issuer", "issuer"), ("authorization_endpoint", "authorizationUrl"), ("jwks_uri", "jwksUrl")] {
        let value = text(key)?
            .ok_or_else(|| invalid(format!("{source} has no {key}; it is not an OpenID Provider configuration")))?;
        config.insert(name.to_owned(), value);
    }
    for (key, name) in
        [("token_endpoint", "tokenUrl"), ("userinfo_endpoint", "userInfoUrl"), ("end_session_endpoint", "logoutUrl")]
    {
        if let Some(value) = text(key)? {
            config.insert(name.to_owned(), value);
        }
    }
    config.insert("useJwksUrl".into(), "true".into());
    config.insert("validateSignature".into(), "true".into());
    let s256 = document
        .get("code_challenge_methods_supported")
        .and_then(Value::as_array)
        .is_some_and(|methods| methods.iter().any(|m| m.as_str() == Some("S256")));
    if s256 {
        config.insert("pkceEnabled".into(), "true".into());
        config.insert("pkceMethod".into(), "S256".into());
    }
    if let Some(u) = from_url {
        config.insert("metadataDescriptorUrl".into(), u.to_owned());
    }
    Ok(config)
}

/// `POST .../identity-provider/import-config`.
pub(super) async fn import_config(
    _: Admin,
    st: web::Data<AppState>,
    realm: web::Path<String>,
    body: Body<ImportConfigRequest>,
) -> Result<HttpResponse, WebError> {
    st.admin.get_realm(&realm).await?;
    let ImportConfigRequest { provider_id, from_url, file } = body.into_inner();
    match provider_id.as_deref() {
        None | Some("") => return Err(WebError::invalid("providerId", "is required")),
        Some(p) if !PROVIDERS.contains(&p) => {
            return Err(WebError::invalid("providerId", format!("{p:?} is not supported; use oidc")))
        }
        Some(_) => {}
    }
    let from_url = from_url.filter(|u| !u.trim().is_empty());
    let file = file.filter(|f| !f.is_null() && f.as_str().is_none_or(|t| !t.trim().is_empty()));
    let config = match (from_url, file) {
        (Some(_), Some(_)) => return Err(WebError::invalid("file", "give fromUrl or file, not both")),
        (None, None) => return Err(from_url_error("is required (or file, a discovery document)")),
        (Some(from_url), None) => {
            let url = check_http_url("fromUrl", from_url.trim())?;
            let document = fetch(&st, url.as_str()).await?;
            config_map(&document, Some(&from_url))?
        }
        (None, Some(file)) => config_map(&saved_document(file)?, None)?,
    };
    Ok(HttpResponse::Ok().json(config))
}

/// A saved discovery document given as `file`: its JSON text, or the object.
fn saved_document(file: Value) -> Result<Map<String, Value>, WebError> {
    let document = match file {
        Value::String(text) => {
            if text.len() > MAX_DOCUMENT {
                return Err(WebError::invalid("file", format!("is larger than {} KiB", MAX_DOCUMENT >> 10)));
            }
            serde_json::from_str(&text).map_err(|e| WebError::invalid("file", format!("is not JSON: {e}")))?
        }
        other => other,
    };
    match document {
        Value::Object(m) => Ok(m),
        _ => Err(WebError::invalid("file", "is not a JSON object (a discovery document)")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    fn doc(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn discovery_document_becomes_keycloak_config() {
        let d = doc(json!({
            "issuer": "https://op.example",
            "authorization_endpoint": "https://op.example/auth",
            "token_endpoint": "https://op.example/token",
            "userinfo_endpoint": "https://op.example/userinfo",
            "end_session_endpoint": "https://op.example/logout",
            "jwks_uri": "https://op.example/jwks",
            "code_challenge_methods_supported": ["plain", "S256"],
        }));
        let from = "https://op.example/.well-known/openid-configuration";
        let c = config_map(&d, Some(from)).unwrap();
        let expected: BTreeMap<String, String> = [
            ("issuer", "https://op.example"),
            ("authorizationUrl", "https://op.example/auth"),
            ("tokenUrl", "https://op.example/token"),
            ("userInfoUrl", "https://op.example/userinfo"),
            ("logoutUrl", "https://op.example/logout"),
            ("jwksUrl", "https://op.example/jwks"),
            ("useJwksUrl", "true"),
            ("validateSignature", "true"),
            ("pkceEnabled", "true"),
            ("pkceMethod", "S256"),
            ("metadataDescriptorUrl", from),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(c, expected);
    }

    #[test]
    fn no_s256_no_pkce_and_required_keys_are_checked() {
        let mut d = doc(json!({
            "issuer": "https://op.example",
            "authorization_endpoint": "https://op.example/auth",
            "jwks_uri": "https://op.example/jwks",
            "code_challenge_methods_supported": ["plain"],
        }));
        let c = config_map(&d, Some("https://op.example/x")).unwrap();
        assert!(!c.contains_key("pkceEnabled") && !c.contains_key("pkceMethod") && !c.contains_key("tokenUrl"));
        d.remove("jwks_uri");
        let e = config_map(&d, Some("https://op.example/x")).unwrap_err().to_string();
        assert!(e.starts_with("fromUrl: ") && e.contains("jwks_uri"), "{e}");
        d.insert("jwks_uri".into(), json!(5));
        assert!(config_map(&d, Some("https://op.example/x")).is_err());
    }

    #[test]
    fn a_saved_document_has_no_metadata_url_and_errors_name_file() {
        let text = r#"{"issuer":"https://op.example","authorization_endpoint":"https://op.example/auth","jwks_uri":"https://op.example/jwks"}"#;
        let from_text = config_map(&saved_document(Value::String(text.into())).unwrap(), None).unwrap();
        let from_object = config_map(&saved_document(serde_json::from_str(text).unwrap()).unwrap(), None).unwrap();
        assert_eq!(from_text, from_object);
        assert_eq!(from_text["jwksUrl"], "https://op.example/jwks");
        assert!(!from_text.contains_key("metadataDescriptorUrl"));
        for bad in [json!("not json"), json!("[1]"), json!(5)] {
            let e = saved_document(bad.clone()).unwrap_err().to_string();
            assert!(e.starts_with("file: "), "{bad}: {e}");
        }
        let e = config_map(&doc(json!({"issuer": "x"})), None).unwrap_err().to_string();
        assert!(e.starts_with("file: "), "{e}");
    }
}
