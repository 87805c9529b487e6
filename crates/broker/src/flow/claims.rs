//! What Federa's tokens and userinfo say about a user: the standard claims
//! the scopes allow (OIDC Core section 5.4), the user's realm roles, and the
//! attributes the client's protocol mappers name. Pure functions of the
//! user, the client and the request; the grants and userinfo call them, so
//! every token of a user says the same.
//!
//! Realm roles are Keycloak's `realm_access: {"roles": [...]}`: always in
//! the access token (as Keycloak's default `roles` client scope puts them
//! there), and in the ID token and userinfo only when the scope `roles` was
//! requested. A user with no role gets no `realm_access`.

use serde_json::{json, Map, Value};

pub use crate::model::client::ClaimsFor;
use crate::model::Client;
use crate::repr::UserRepresentation;

/// The claims of a user for one token (or userinfo) of a client: the
/// standard claims the scopes allow, `realm_access` from `user.realm_roles`
/// (read with the user), and the client's attribute claims. The caller adds
/// the token's own claims after these, so none of these can replace them.
pub fn user_claims(
    user: &UserRepresentation,
    client: &Client,
    scopes: &[String],
    target: ClaimsFor,
) -> Map<String, Value> {
    let has = |s: &str| scopes.iter().any(|x| x == s);
    let mut c = if target == ClaimsFor::AccessToken { Map::new() } else { standard_claims(user, scopes) };
    for m in client.attribute_claims.iter().filter(|m| m.goes_to(target)) {
        let values = user.attributes.as_ref().and_then(|a| a.get(&m.attribute));
        if let Some(v) = values.and_then(|v| m.value(v)) {
            m.insert(&mut c, v);
        }
    }
    let roles = user.realm_roles.as_deref().unwrap_or_default();
    if !roles.is_empty() && (target == ClaimsFor::AccessToken || has("roles")) {
        c.insert("realm_access".into(), json!({ "roles": roles }));
    }
    c
}

/// Whether a request's claims need the user's roles (so that callers read
/// them only then).
pub fn needs_roles(target: ClaimsFor, scopes: &[String]) -> bool {
    target == ClaimsFor::AccessToken || scopes.iter().any(|s| s == "roles")
}

/// The standard claims the scopes allow (OIDC Core section 5.4).
fn standard_claims(user: &UserRepresentation, scopes: &[String]) -> Map<String, Value> {
    let mut c = Map::new();
    let has = |s: &str| scopes.iter().any(|x| x == s);
    if has("profile") {
        if let Some(u) = &user.username {
            c.insert("preferred_username".into(), json!(u));
        }
        let name = [user.first_name.as_deref(), user.last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>();
        if !name.is_empty() {
            c.insert("name".into(), json!(name.join(" ")));
        }
        if let Some(v) = &user.first_name {
            c.insert("given_name".into(), json!(v));
        }
        if let Some(v) = &user.last_name {
            c.insert("family_name".into(), json!(v));
        }
    }
    if has("email") {
        if let Some(e) = &user.email {
            c.insert("email".into(), json!(e));
            c.insert("email_verified".into(), json!(user.email_verified.unwrap_or(false)));
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_follow_scopes() {
        let u = UserRepresentation {
            username: Some("alice".into()),
            first_name: Some("Alice".into()),
            last_name: Some("Anders".into()),
            email: Some("a@x.test".into()),
            email_verified: Some(true),
            ..Default::default()
        };
        let none = standard_claims(&u, &["openid".into()]);
        assert!(none.is_empty());
        let all = standard_claims(&u, &["openid".into(), "profile".into(), "email".into()]);
        assert_eq!(all["name"], "Alice Anders");
        assert_eq!(all["email_verified"], true);
        assert_eq!(all["preferred_username"], "alice");
    }

    #[test]
    fn roles_and_attribute_claims() {
        let client: crate::repr::ClientRepresentation = serde_json::from_value(json!({
            "clientId": "app",
            "protocolMappers": [
                {"name": "dept", "protocolMapper": "oidc-usermodel-attribute-mapper",
                 "config": {"user.attribute": "dept", "claim.name": "org.dept", "id.token.claim": "true"}},
                {"name": "level", "protocolMapper": "oidc-usermodel-attribute-mapper",
                 "config": {"user.attribute": "level", "claim.name": "level", "jsonType.label": "long",
                            "access.token.claim": "false", "userinfo.token.claim": "true"}},
                {"name": "groups", "protocolMapper": "oidc-usermodel-attribute-mapper",
                 "config": {"user.attribute": "groups", "claim.name": "groups", "multivalued": "true", "id.token.claim": "true"}},
                {"name": "flag", "protocolMapper": "oidc-usermodel-attribute-mapper",
                 "config": {"user.attribute": "flag", "claim.name": "fl\\.ag", "jsonType.label": "boolean", "id.token.claim": "true"}},
            ]
        }))
        .unwrap_or_default();
        let client = Client::from_repr(&client);
        let attrs = [("dept", vec!["R&D"]), ("level", vec!["3"]), ("groups", vec!["a", "b"]), ("flag", vec!["TRUE"])];
        let u = UserRepresentation {
            username: Some("alice".into()),
            attributes: Some(
                attrs.into_iter().map(|(k, v)| (k.into(), v.into_iter().map(String::from).collect())).collect(),
            ),
            realm_roles: Some(vec!["admin".into()]),
            ..Default::default()
        };
        let openid = ["openid".to_owned()];
        let id = user_claims(&u, &client, &openid, ClaimsFor::IdToken);
        assert_eq!(Value::Object(id), json!({"org": {"dept": "R&D"}, "groups": ["a", "b"], "fl.ag": true}));
        let access = user_claims(&u, &client, &openid, ClaimsFor::AccessToken);
        assert_eq!(
            Value::Object(access),
            json!({"org": {"dept": "R&D"}, "groups": ["a", "b"], "fl.ag": true, "realm_access": {"roles": ["admin"]}})
        );
        let with_roles = ["openid".to_owned(), "roles".to_owned()];
        let info = user_claims(&u, &client, &with_roles, ClaimsFor::Userinfo);
        assert_eq!(
            Value::Object(info),
            json!({"org": {"dept": "R&D"}, "level": 3, "groups": ["a", "b"], "fl.ag": true, "realm_access": {"roles": ["admin"]}})
        );
    }
}
