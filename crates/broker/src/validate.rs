//! Checks and normalises representations before anything is stored: every
//! refusal names the field, and defaults are filled in once, here.

use std::collections::BTreeMap;

use url::Url;

use crate::error::BrokerError;
use crate::repr::{
    ClientRepresentation, FederatedIdentityRepresentation, IdentityProviderMapperRepresentation,
    IdentityProviderRepresentation, RealmRepresentation, RoleRepresentation, UserRepresentation,
};

/// The value Keycloak shows in place of a secret.
pub const MASK: &str = "**********";

/// The signature algorithms a realm may choose for its tokens.
pub const REALM_ALGORITHMS: &[&str] = &["RS256", "ES256", "EdDSA"];

fn invalid(field: impl Into<String>, message: impl Into<String>) -> BrokerError {
    BrokerError::invalid(field, message)
}

/// The longest lifespan or timeout a realm may set, in seconds: ten years.
/// Longer values are surely mistakes, and values near `i64::MAX` would
/// overflow when added to the clock (tokens born expired).
/// It is the model's bound ([`crate::model::MAX_LIFESPAN`]), in seconds.
pub const MAX_LIFESPAN: i64 = crate::model::MAX_LIFESPAN.as_secs() as i64;

/// Checks a name that appears in URL paths (realm names, aliases).
fn check_path_name(field: &str, value: Option<&str>) -> Result<String, BrokerError> {
    let v = value.map(str::trim).unwrap_or_default();
    if v.is_empty() {
        return Err(invalid(field, "is required"));
    }
    // A segment of `.` or `..` names the folder itself or its parent: URL
    // normalisation (RFC 3986 section 5.2.4) rewrites any path through it.
    if v == "." || v == ".." {
        return Err(invalid(field, format!("{v:?} is not a name: it is a relative path segment")));
    }
    if v.len() > 255 || v.chars().any(|c| c.is_control() || matches!(c, '/' | '?' | '#' | '%' | '\\')) {
        return Err(invalid(field, format!("{v:?} may not contain / ? # % \\ or control characters")));
    }
    Ok(v.to_owned())
}

/// Checks that a string is an absolute http or https URL.
pub fn check_http_url(field: &str, value: &str) -> Result<Url, BrokerError> {
    let url = Url::parse(value).map_err(|e| invalid(field, format!("{value:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(field, format!("{value:?} must be an absolute http or https URL")));
    }
    Ok(url)
}

/// Validates a realm's own fields (not its nested parts) and fills defaults.
pub fn realm(r: &mut RealmRepresentation) -> Result<(), BrokerError> {
    let name = check_path_name("realm", r.realm.as_deref())?;
    r.realm = Some(name);
    if r.id.as_deref().is_none_or(str::is_empty) {
        r.id = Some(uuid::Uuid::new_v4().to_string());
    }
    r.enabled.get_or_insert(true);
    match r.default_signature_algorithm.as_deref() {
        None | Some("") => r.default_signature_algorithm = Some("RS256".into()),
        Some(a) if REALM_ALGORITHMS.contains(&a) => {}
        Some(a) => {
            return Err(invalid(
                "defaultSignatureAlgorithm",
                format!("{a:?} is not supported; use one of {}", REALM_ALGORITHMS.join(", ")),
            ))
        }
    }
    // Every integer setting of the realm representation that counts time.
    // 0 means "the default", as the sign-in path reads it.
    for (field, value) in [
        ("accessTokenLifespan", r.access_token_lifespan),
        ("ssoSessionIdleTimeout", r.sso_session_idle_timeout),
        ("ssoSessionMaxLifespan", r.sso_session_max_lifespan),
        ("offlineSessionIdleTimeout", r.offline_session_idle_timeout),
        ("offlineSessionMaxLifespan", r.offline_session_max_lifespan),
    ] {
        if value.is_some_and(|v| !(0..=MAX_LIFESPAN).contains(&v)) {
            return Err(invalid(
                field,
                format!("must be between 0 (the default) and {MAX_LIFESPAN} seconds (ten years)"),
            ));
        }
    }
    Ok(())
}

/// Validates a client and fills defaults; `field` prefixes names in messages
/// (`clients[3].`) when the client is part of a realm.
pub fn client(c: &mut ClientRepresentation, prefix: &str) -> Result<(), BrokerError> {
    let client_id = c.client_id.as_deref().map(str::trim).unwrap_or_default();
    if client_id.is_empty() {
        return Err(invalid(format!("{prefix}clientId"), "is required"));
    }
    c.client_id = Some(client_id.to_owned());
    match c.protocol.as_deref() {
        None | Some("openid-connect") => c.protocol = Some("openid-connect".into()),
        Some(p) => {
            return Err(invalid(format!("{prefix}protocol"), format!("{p:?} is not supported; only openid-connect")))
        }
    }
    if c.id.as_deref().is_none_or(str::is_empty) {
        c.id = Some(uuid::Uuid::new_v4().to_string());
    }
    c.enabled.get_or_insert(true);
    c.public_client.get_or_insert(false);
    c.bearer_only.get_or_insert(false);
    c.standard_flow_enabled.get_or_insert(true);
    match c.client_authenticator_type.as_deref() {
        None => c.client_authenticator_type = Some("client-secret".into()),
        Some("client-secret" | "client-jwt" | "client-secret-jwt" | "client-x509") => {}
        Some(t) => {
            return Err(invalid(
                format!("{prefix}clientAuthenticatorType"),
                format!("{t:?} is not one of client-secret, client-jwt, client-secret-jwt, client-x509"),
            ))
        }
    }
    for (i, uri) in c.redirect_uris.iter().flatten().enumerate() {
        if uri.trim().is_empty() {
            return Err(invalid(format!("{prefix}redirectUris[{i}]"), "may not be empty"));
        }
    }
    crate::model::client::check_protocol_mappers(c).map_err(|(field, e)| invalid(format!("{prefix}{field}"), e))?;
    for m in c.protocol_mappers.iter_mut().flatten() {
        if m.id.as_deref().is_none_or(str::is_empty) {
            m.id = Some(uuid::Uuid::new_v4().to_string());
        }
    }
    let kind = c.client_authenticator_type.as_deref();
    if c.public_client == Some(true)
        || c.bearer_only == Some(true)
        || matches!(kind, Some("client-jwt" | "client-x509"))
    {
        // A client that authenticates with keys (or not at all) holds no
        // secret, so none can be used in its name.
        c.secret = None;
    } else if matches!(kind, Some("client-secret" | "client-secret-jwt"))
        && c.secret.as_deref().is_none_or(|s| s.is_empty() || s == MASK)
    {
        c.secret = Some(crate::keys::random_secret());
    }
    if kind == Some("client-jwt") {
        crate::model::client_jwks(c).map_err(|(field, why)| invalid(format!("{prefix}{field}"), why))?;
    }
    Ok(())
}

/// Validates an upstream identity provider and fills defaults.
pub fn identity_provider(p: &mut IdentityProviderRepresentation, prefix: &str) -> Result<(), BrokerError> {
    p.alias = Some(check_path_name(&format!("{prefix}alias"), p.alias.as_deref())?);
    match p.provider_id.as_deref() {
        Some("oidc" | "keycloak-oidc") => {}
        None => return Err(invalid(format!("{prefix}providerId"), "is required (oidc or keycloak-oidc)")),
        Some(other) => {
            return Err(invalid(
                format!("{prefix}providerId"),
                format!("{other:?} is not supported; use oidc or keycloak-oidc"),
            ))
        }
    }
    if p.internal_id.as_deref().is_none_or(str::is_empty) {
        p.internal_id = Some(uuid::Uuid::new_v4().to_string());
    }
    p.enabled.get_or_insert(true);
    // Every config key is parsed, typed and checked in one place: the model.
    crate::model::Upstream::from_repr(p, prefix)?;
    Ok(())
}

/// Validates a mapper against its provider alias.
pub fn mapper(m: &mut IdentityProviderMapperRepresentation, prefix: &str) -> Result<(), BrokerError> {
    let name = m.name.as_deref().map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(invalid(format!("{prefix}name"), "is required"));
    }
    m.name = Some(name.to_owned());
    let ty = m.identity_provider_mapper.as_deref().unwrap_or_default();
    federa_mappers::validate(ty, &m.config).map_err(|e| invalid(format!("{prefix}{}", e.field), e.message))?;
    if m.id.as_deref().is_none_or(str::is_empty) {
        m.id = Some(uuid::Uuid::new_v4().to_string());
    }
    Ok(())
}

/// Validates a realm role.
pub fn role(r: &mut RoleRepresentation, prefix: &str) -> Result<(), BrokerError> {
    let name = r.name.as_deref().map(str::trim).unwrap_or_default();
    if name.is_empty() {
        return Err(invalid(format!("{prefix}name"), "is required"));
    }
    r.name = Some(name.to_owned());
    if r.id.as_deref().is_none_or(str::is_empty) {
        r.id = Some(uuid::Uuid::new_v4().to_string());
    }
    Ok(())
}

/// Validates a user and fills defaults; `now_ms` stamps new users.
pub fn user(u: &mut UserRepresentation, prefix: &str, now_ms: i64) -> Result<(), BrokerError> {
    let username = u.username.as_deref().map(str::trim).unwrap_or_default();
    if username.is_empty() {
        return Err(invalid(format!("{prefix}username"), "is required"));
    }
    // Keycloak keeps usernames in lower case; lookups depend on it.
    u.username = Some(username.to_lowercase());
    if let Some(email) = u.email.as_deref().filter(|e| !e.is_empty()) {
        let valid = email.split_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty() && !email.contains(' '));
        if !valid {
            return Err(invalid(format!("{prefix}email"), format!("{email:?} is not an email address")));
        }
    }
    if u.id.as_deref().is_none_or(str::is_empty) {
        u.id = Some(uuid::Uuid::new_v4().to_string());
    }
    u.enabled.get_or_insert(true);
    u.email_verified.get_or_insert(false);
    u.created_timestamp.get_or_insert(now_ms);
    Ok(())
}

/// Validates a link to an upstream account.
pub fn federated_identity(f: &FederatedIdentityRepresentation, prefix: &str) -> Result<(), BrokerError> {
    for (name, v) in [("identityProvider", &f.identity_provider), ("userId", &f.user_id)] {
        if v.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Err(invalid(format!("{prefix}{name}"), "is required"));
        }
    }
    Ok(())
}

/// Replaces `${env:NAME}` in every string of a JSON document, for realm files.
pub fn expand_env(value: &mut serde_json::Value, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), BrokerError> {
    match value {
        serde_json::Value::String(s) => {
            while let Some(start) = s.find("${env:") {
                let rest = &s[start + 6..];
                let end = rest.find('}').ok_or_else(|| invalid("${env:", format!("unterminated in {s:?}")))?;
                let name = &rest[..end];
                let v = lookup(name)
                    .ok_or_else(|| invalid(format!("${{env:{name}}}"), "environment variable is not set"))?;
                s.replace_range(start..start + 6 + end + 1, &v);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().try_for_each(|v| expand_env(v, lookup))?,
        serde_json::Value::Object(o) => o.values_mut().try_for_each(|v| expand_env(v, lookup))?,
        _ => {}
    }
    Ok(())
}

/// Names of ignored fields, for the one import warning.
pub fn ignored_names(prefix: &str, ignored: &BTreeMap<String, serde_json::Value>, out: &mut Vec<String>) {
    out.extend(ignored.keys().map(|k| format!("{prefix}{k}")));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idp(cfg: &[(&str, &str)]) -> IdentityProviderRepresentation {
        IdentityProviderRepresentation {
            alias: Some("up".into()),
            provider_id: Some("oidc".into()),
            config: cfg.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn identity_provider_refusals_name_the_field() {
        let base = [("clientId", "c"), ("authorizationUrl", "https://a/auth"), ("tokenUrl", "https://a/token")];
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: &[Case] = &[
            (&[], None),
            (&[("tokenUrl", "not a url")], Some("config.tokenUrl")),
            (&[("tokenUrl", "ftp://a/token")], Some("config.tokenUrl")),
            (&[("syncMode", "SOMETIMES")], Some("config.syncMode")),
            (&[("clientAuthMethod", "basic")], Some("config.clientAuthMethod")),
            (&[("pkceEnabled", "yes")], Some("config.pkceEnabled")),
            (&[("guiOrder", "first")], Some("config.guiOrder")),
            (&[("clientId", "")], Some("config.clientId")),
        ];
        for (overrides, expected) in cases {
            let mut cfg: Vec<(&str, &str)> = base.to_vec();
            cfg.retain(|(k, _)| !overrides.iter().any(|(o, _)| o == k));
            cfg.extend_from_slice(overrides);
            let got = identity_provider(&mut idp(&cfg), "").err().map(|e| match e {
                BrokerError::Invalid { field, .. } => field,
                other => other.to_string(),
            });
            assert_eq!(got.as_deref(), *expected, "{overrides:?}");
        }
        let mut unknown = idp(&base);
        unknown.provider_id = Some("saml".into());
        assert!(
            matches!(identity_provider(&mut unknown, ""), Err(BrokerError::Invalid { field, .. }) if field == "providerId")
        );
    }

    fn refused_field(r: Result<(), BrokerError>) -> Option<String> {
        r.err().map(|e| match e {
            BrokerError::Invalid { field, .. } => field,
            other => other.to_string(),
        })
    }

    #[test]
    fn realm_names_are_not_relative_path_segments() {
        for (name, refused) in
            [(".", true), ("..", true), (" .. ", true), ("...", false), ("a.b", false), (".hidden", false)]
        {
            let mut r = RealmRepresentation { realm: Some(name.into()), ..Default::default() };
            let expected = refused.then(|| "realm".to_owned());
            assert_eq!(refused_field(realm(&mut r)), expected, "{name:?}");
        }
        let mut p = idp(&[("clientId", "c"), ("issuer", "https://a")]);
        p.alias = Some("..".into());
        assert_eq!(
            refused_field(identity_provider(&mut p, "identityProviders[0].")).as_deref(),
            Some("identityProviders[0].alias")
        );
    }

    #[test]
    fn lifespans_are_bounded() {
        type Setter = fn(&mut RealmRepresentation, i64);
        let fields: [(&str, Setter); 5] = [
            ("accessTokenLifespan", |r, v| r.access_token_lifespan = Some(v)),
            ("ssoSessionIdleTimeout", |r, v| r.sso_session_idle_timeout = Some(v)),
            ("ssoSessionMaxLifespan", |r, v| r.sso_session_max_lifespan = Some(v)),
            ("offlineSessionIdleTimeout", |r, v| r.offline_session_idle_timeout = Some(v)),
            ("offlineSessionMaxLifespan", |r, v| r.offline_session_max_lifespan = Some(v)),
        ];
        for (field, set) in fields {
            for (value, ok) in [
                (0, true),
                (1, true),
                (3600, true),
                (MAX_LIFESPAN, true),
                (MAX_LIFESPAN + 1, false),
                (i64::MAX, false),
                (i64::MAX - 100, false),
                (-1, false),
                (i64::MIN, false),
            ] {
                let mut r = RealmRepresentation { realm: Some("r".into()), ..Default::default() };
                set(&mut r, value);
                let expected = (!ok).then(|| field.to_owned());
                assert_eq!(refused_field(realm(&mut r)), expected, "{field}={value}");
            }
        }
    }

    #[test]
    fn env_expansion() {
        let mut v = serde_json::json!({"a": ["x${env:ONE}y", {"b": "${env:TWO}"}], "c": "${YANDEX_ID}"});
        let lookup = |n: &str| match n {
            "ONE" => Some("1".to_owned()),
            "TWO" => Some("2".to_owned()),
            _ => None,
        };
        assert!(expand_env(&mut v, &lookup).is_ok());
        assert_eq!(v, serde_json::json!({"a": ["x1y", {"b": "2"}], "c": "${YANDEX_ID}"}));
        let mut missing = serde_json::json!("${env:THREE}");
        assert!(expand_env(&mut missing, &lookup).is_err());
    }

    #[test]
    fn confidential_clients_get_a_secret_public_ones_none() {
        let mut c = ClientRepresentation { client_id: Some("app".into()), ..Default::default() };
        assert!(client(&mut c, "").is_ok());
        assert!(c.secret.as_deref().is_some_and(|s| s.len() >= 32));
        let mut p = ClientRepresentation {
            client_id: Some("spa".into()),
            public_client: Some(true),
            secret: Some("x".into()),
            ..Default::default()
        };
        assert!(client(&mut p, "").is_ok());
        assert_eq!(p.secret, None);
    }

    #[test]
    fn a_client_jwt_client_gets_no_secret_and_readable_keys() {
        let mut c = ClientRepresentation {
            client_id: Some("svc".into()),
            client_authenticator_type: Some("client-jwt".into()),
            secret: Some("left-over".into()),
            ..Default::default()
        };
        assert!(client(&mut c, "").is_ok());
        assert_eq!(c.secret, None);
        let mut s = ClientRepresentation { client_authenticator_type: Some("client-secret-jwt".into()), ..c.clone() };
        assert!(client(&mut s, "").is_ok());
        assert!(s.secret.as_deref().is_some_and(|s| s.len() >= 32));
        for (k, v) in [("jwks.string", "{not json"), ("jwks.string", "[1]"), ("jwks.url", "ftp://x.test/k")] {
            c.attributes = Some([(k.to_owned(), v.to_owned())].into_iter().collect());
            let err = client(&mut c, "clients[0].").unwrap_err().to_string();
            assert!(err.contains(&format!("clients[0].attributes.{k}")), "{err}");
        }
    }
}
