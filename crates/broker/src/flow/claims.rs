//! What Federa's tokens and userinfo say about a user: the standard claims
//! the scopes allow (OIDC Core section 5.4). Pure functions of the user and
//! the request; the grants and userinfo call them, so every token of a user
//! says the same.

use serde_json::{json, Map, Value};

use crate::repr::UserRepresentation;

/// The claims of a user that the scopes allow (OIDC Core section 5.4).
pub fn user_claims(user: &UserRepresentation, scopes: &[String]) -> Map<String, Value> {
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
        let none = user_claims(&u, &["openid".into()]);
        assert!(none.is_empty());
        let all = user_claims(&u, &["openid".into(), "profile".into(), "email".into()]);
        assert_eq!(all["name"], "Alice Anders");
        assert_eq!(all["email_verified"], true);
        assert_eq!(all["preferred_username"], "alice");
    }
}
