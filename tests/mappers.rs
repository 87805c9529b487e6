//! Identity-provider mappers and the claims they feed, end to end: the real
//! upstream (node oidc-provider, whose `groups` claim follows the login name
//! `name~g1,g2` for the same subject, and whose `address` is nested), Federa
//! on a real socket, the app signed in through `openidconnect`. Each mapper
//! type and sync mode changes something a later check reads, so a mapper
//! that is ignored fails here; so does a FORCE claim-to-role mapper that
//! does not take its role back when the claim changes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use federa_broker::SessionStore;
use federa_tests::browser::Browser;
use federa_tests::world::{claims_of, Tokens, World, APP_CB};
use federa_tests::TestDb;
use serde_json::{json, Value};

fn mapper(name: &str, ty: &str, config: Value) -> Value {
    json!({"name": name, "identityProviderAlias": "node", "identityProviderMapper": ty, "config": config})
}

fn role(name: &str) -> Value {
    json!({"name": name})
}

/// Signs a fresh browser in as `login` (`name~groups`), with extra scopes.
async fn sign_in_as(w: &World, login: &str, scopes: &[&str]) -> Tokens {
    let app = w.app().await;
    let extra = [("kc_idp_hint", "node"), ("login_hint", login)];
    let (page, verifier, nonce) = w.authorize(&Browser::new(), &app, APP_CB, scopes, &extra).await;
    w.redeem(&app, &page, verifier, &nonce).await
}

async fn userinfo(w: &World, access_token: &str) -> Value {
    let r = reqwest::Client::new().get(w.endpoint("userinfo")).bearer_auth(access_token).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

/// The only user of the realm.
async fn the_user(w: &World) -> Value {
    let users = w.users().await;
    assert_eq!(users.len(), 1, "{users:#?}");
    users[0].clone()
}

async fn roles_of(w: &World, id: &str) -> Vec<String> {
    let (status, body) = w.admin(reqwest::Method::GET, &format!("users/{id}/role-mappings/realm"), Value::Null).await;
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<String> =
        body.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()).collect();
    names.sort();
    names
}

fn token_roles(access_token: &str) -> Vec<String> {
    let claims = claims_of(access_token);
    let mut names: Vec<String> = claims
        .get("realm_access")
        .and_then(|r| r["roles"].as_array())
        .map(|a| a.iter().map(|r| r.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

async fn admin_update_user(w: &World, id: &str, change: Value) {
    let mut user = the_user(w).await;
    for (k, v) in change.as_object().unwrap() {
        user[k] = v.clone();
    }
    let (status, body) = w.admin(reqwest::Method::PUT, &format!("users/{id}"), user).await;
    assert_eq!(status, 204, "{body}");
}

async fn admin_revoke(w: &World, id: &str, name: &str) {
    let path = format!("users/{id}/role-mappings/realm");
    let (status, body) = w.admin(reqwest::Method::DELETE, &path, json!([{"name": name}])).await;
    assert_eq!(status, 204, "{body}");
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect()).unwrap_or_default()
}

/// The provider imports (syncMode IMPORT): every mapper applies at the
/// first login; at a later one each mapper's own sync mode decides.
async fn import_then_each_mode(w: World) {
    // First login: member of ops and staff.
    let first = sign_in_as(&w, "alice~ops,staff", &[]).await;
    let user = the_user(&w).await;
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(
        user["username"], "node.alice",
        "the username template (uppercase, then lowercased as Keycloak stores it)"
    );
    let attrs = &user["attributes"];
    assert_eq!(strings(&attrs["tier"]), ["gold"], "hardcoded attribute: {user}");
    assert_eq!(strings(&attrs["city"]), ["Lyon"], "nested claim address.locality: {user}");
    assert_eq!(strings(&attrs["zip"]), ["69001"], "escaped dot address.postal\\.code: {user}");
    assert_eq!(strings(&attrs["groups"]), ["ops", "staff"], "array claim, multi-valued: {user}");
    let granted = ["adv", "hc", "legacy-staff", "ops", "staffer"];
    assert_eq!(roles_of(&w, &id).await, granted, "the unknown role \"ghost\" is skipped, the rest granted");
    assert_eq!(token_roles(&first.access_token), granted, "the access token carries realm_access.roles");
    assert!(!first.id_claims().contains_key("realm_access"), "not in the ID token without the roles scope");

    // The admin changes what IMPORT mappers wrote, and what FORCE ones did.
    admin_update_user(
        &w,
        &id,
        json!({"attributes": {"city": ["Paris"], "tier": ["silver"], "groups": ["x"], "zip": ["1"]}}),
    )
    .await;
    admin_revoke(&w, &id, "hc").await;

    // Later login: now only in dev.
    let later = sign_in_as(&w, "alice~dev", &[]).await;
    let user = the_user(&w).await;
    assert_eq!(user["id"], id.as_str(), "the same user, through the link");
    let attrs = &user["attributes"];
    assert_eq!(strings(&attrs["tier"]), ["gold"], "FORCE hardcoded attribute overwrites: {user}");
    assert_eq!(strings(&attrs["groups"]), ["dev"], "FORCE attribute follows the claim: {user}");
    assert_eq!(strings(&attrs["city"]), ["Paris"], "INHERIT of IMPORT keeps the admin's value: {user}");
    assert_eq!(strings(&attrs["zip"]), ["1"], "IMPORT keeps the admin's value: {user}");
    assert_eq!(user["username"], "node.alice");
    let now = roles_of(&w, &id).await;
    // ops (FORCE) and adv (FORCE advanced) go: the claim no longer matches;
    // legacy-staff (LEGACY) goes too; staffer (IMPORT) stays; hc (IMPORT) is
    // not granted again.
    assert_eq!(now, ["staffer"], "after the later login");
    assert_eq!(token_roles(&later.access_token), ["staffer"]);

    // And back in ops: FORCE grants again, LEGACY does not.
    let again = sign_in_as(&w, "alice~ops,staff", &[]).await;
    assert_eq!(roles_of(&w, &id).await, ["adv", "ops", "staffer"]);
    assert_eq!(token_roles(&again.access_token), ["adv", "ops", "staffer"]);
}

fn import_world() -> federa_tests::world::Builder {
    World::builder().idp_config(json!({"loginHint": "true", "syncMode": "IMPORT"})).realm(json!({
        "roles": {"realm": [role("hc"), role("ops"), role("staffer"), role("legacy-staff"), role("adv")]},
        "identityProviderMappers": [
            mapper("hc", "hardcoded-role-idp-mapper", json!({"role": "hc", "syncMode": "INHERIT"})),
            mapper("ghost", "hardcoded-role-idp-mapper", json!({"role": "ghost"})),
            mapper("tier", "hardcoded-attribute-idp-mapper",
                json!({"attribute": "tier", "attribute.value": "gold", "syncMode": "FORCE"})),
            mapper("city", "oidc-user-attribute-idp-mapper",
                json!({"claim": "address.locality", "user.attribute": "city", "syncMode": "INHERIT"})),
            mapper("zip", "oidc-user-attribute-idp-mapper",
                json!({"claim": "address.postal\\.code", "user.attribute": "zip", "syncMode": "IMPORT"})),
            mapper("groups", "oidc-user-attribute-idp-mapper",
                json!({"claim": "groups", "user.attribute": "groups", "syncMode": "FORCE"})),
            mapper("ops", "oidc-role-idp-mapper",
                json!({"claim": "groups", "claim.value": "ops", "role": "ops", "syncMode": "FORCE"})),
            mapper("staffer", "oidc-role-idp-mapper",
                json!({"claim": "groups", "claim.value": "staff", "role": "staffer", "syncMode": "IMPORT"})),
            mapper("legacy", "oidc-role-idp-mapper",
                json!({"claim": "groups", "claim.value": "staff", "role": "legacy-staff", "syncMode": "LEGACY"})),
            mapper("adv", "oidc-advanced-role-idp-mapper", json!({
                "claims": "[{\"key\":\"groups\",\"value\":\"o.s\"},{\"key\":\"address.country\",\"value\":\"FR\"}]",
                "are.claim.values.regex": "true", "role": "adv", "syncMode": "FORCE"})),
            mapper("username", "oidc-username-idp-mapper",
                json!({"template": "${ALIAS}.${CLAIM.preferred_username | uppercase}"})),
        ]
    }))
}

/// The provider forces (syncMode FORCE): INHERIT mappers update at every
/// login; LEGACY ones as Keycloak's legacy code did; BROKER_ID keys the link.
async fn force_inherited(w: World) {
    sign_in_as(&w, "carol", &[]).await;
    let user = the_user(&w).await;
    let id = user["id"].as_str().unwrap().to_owned();
    assert_eq!(user["username"], "carol.node");
    assert_eq!(roles_of(&w, &id).await, ["hc", "legacy-hc"]);
    let (_, links) = w.admin(reqwest::Method::GET, &format!("users/{id}/federated-identity"), Value::Null).await;
    assert_eq!(links[0]["userId"], "carol@upstream.test", "BROKER_ID: the link's subject is the template's: {links}");
    assert_eq!(links[0]["userName"], "CAROL", "BROKER_USERNAME: {links}");

    admin_revoke(&w, &id, "hc").await;
    admin_revoke(&w, &id, "legacy-hc").await;
    admin_update_user(&w, &id, json!({"username": "renamed", "firstName": "Changed"})).await;

    sign_in_as(&w, "carol", &[]).await;
    let user = the_user(&w).await;
    assert_eq!(user["id"], id.as_str(), "found again through the BROKER_ID link");
    assert_eq!(user["username"], "carol.node", "FORCE username template renames back");
    assert_eq!(user["firstName"], "Lyon", "FORCE firstName target (from address.locality)");
    assert_eq!(roles_of(&w, &id).await, ["hc"], "FORCE hardcoded role granted again; LEGACY one not");
}

fn force_world() -> federa_tests::world::Builder {
    World::builder().idp_config(json!({"loginHint": "true", "syncMode": "FORCE"})).realm(json!({
        "roles": {"realm": [role("hc"), role("legacy-hc")]},
        "identityProviderMappers": [
            mapper("hc", "hardcoded-role-idp-mapper", json!({"role": "hc"})),
            mapper("legacy", "hardcoded-role-idp-mapper", json!({"role": "legacy-hc", "syncMode": "LEGACY"})),
            mapper("username", "oidc-username-idp-mapper", json!({"template": "${CLAIM.preferred_username}.${ALIAS}"})),
            mapper("broker-id", "oidc-username-idp-mapper", json!({"template": "${CLAIM.email}", "target": "BROKER_ID"})),
            mapper("broker-name", "oidc-username-idp-mapper",
                json!({"template": "${CLAIM.preferred_username | uppercase}", "target": "BROKER_USERNAME"})),
            mapper("first", "oidc-user-attribute-idp-mapper",
                json!({"claim": "address.locality", "user.attribute": "firstName"})),
        ]
    }))
}

/// A client's protocol mappers put user attributes into its tokens and
/// userinfo, each where its switches say; realm roles reach the ID token and
/// userinfo only with the `roles` scope.
async fn downstream_claims(w: World) {
    let tokens = sign_in_as(&w, "dave~ops,staff", &[]).await;
    let id = tokens.id_claims();
    assert_eq!(id["addr"], json!({"city": "Lyon"}), "nested claim.name in the ID token: {id:?}");
    assert!(!id.contains_key("groups"), "groups are for the access token only: {id:?}");
    assert!(!id.contains_key("realm_access"), "{id:?}");
    let access = claims_of(&tokens.access_token);
    assert_eq!(access["groups"], json!(["ops", "staff"]), "multivalued in the access token: {access:?}");
    assert_eq!(access["realm_access"], json!({"roles": ["ops"]}), "{access:?}");
    assert!(!access.contains_key("addr"), "access.token.claim false: {access:?}");
    assert_eq!(access["sub"], id["sub"], "a mapper never replaces the token's own claims");
    let info = userinfo(&w, &tokens.access_token).await;
    assert_eq!(info["addr"], json!({"city": "Lyon"}), "userinfo follows id.token.claim by default: {info}");
    assert_eq!(info["ops_member"], json!(true), "jsonType boolean, userinfo only: {info}");
    assert!(info.get("realm_access").is_none(), "{info}");

    let with_roles = sign_in_as(&w, "dave~ops", &["roles"]).await;
    assert_eq!(with_roles.id_claims()["realm_access"], json!({"roles": ["ops"]}));
    let info = userinfo(&w, &with_roles.access_token).await;
    assert_eq!(info["realm_access"], json!({"roles": ["ops"]}), "{info}");

    // A bad protocol mapper is refused, naming the field.
    let bad = json!({"clientId": "bad", "redirectUris": ["http://bad.test/cb"], "protocolMappers": [
        {"name": "n", "protocol": "openid-connect", "protocolMapper": "oidc-usermodel-attribute-mapper",
         "config": {"user.attribute": "a", "claim.name": "n", "jsonType.label": "float"}}]});
    let (status, body) = w.admin(reqwest::Method::POST, "clients", bad).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("protocolMappers[0].config.jsonType.label"), "{body}");
    let sneaky = json!({"clientId": "sneaky", "redirectUris": ["http://bad.test/cb"], "protocolMappers": [
        {"name": "n", "protocolMapper": "oidc-usermodel-attribute-mapper",
         "config": {"user.attribute": "a", "claim.name": "sub"}}]});
    let (status, body) = w.admin(reqwest::Method::POST, "clients", sneaky).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("protocolMappers[0].config.claim.name"), "{body}");
}

fn claims_world() -> federa_tests::world::Builder {
    let attr = |name: &str, config: Value| json!({"name": name, "protocol": "openid-connect", "protocolMapper": "oidc-usermodel-attribute-mapper", "config": config});
    World::builder()
        .idp_config(json!({"loginHint": "true", "syncMode": "FORCE"}))
        .realm(json!({
            "roles": {"realm": [role("ops")]},
            "identityProviderMappers": [
                mapper("city", "oidc-user-attribute-idp-mapper", json!({"claim": "address.locality", "user.attribute": "city"})),
                mapper("groups", "oidc-user-attribute-idp-mapper", json!({"claim": "groups", "user.attribute": "groups"})),
                mapper("ops", "oidc-role-idp-mapper", json!({"claim": "groups", "claim.value": "ops", "role": "ops"})),
                mapper("member", "hardcoded-attribute-idp-mapper", json!({"attribute": "member", "attribute.value": "TRUE"})),
            ]
        }))
        .app(json!({"protocolMappers": [
            attr("city", json!({"user.attribute": "city", "claim.name": "addr.city", "id.token.claim": "true",
                                "access.token.claim": "false"})),
            attr("groups", json!({"user.attribute": "groups", "claim.name": "groups", "multivalued": "true"})),
            attr("member", json!({"user.attribute": "member", "claim.name": "ops_member", "jsonType.label": "boolean",
                                  "access.token.claim": "false", "userinfo.token.claim": "true"})),
        ]}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_on_sqlite() {
    import_then_each_mode(import_world().start_sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_on_postgres() {
    let Some(db) = TestDb::postgres("mappers::import_on_postgres") else { return };
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    import_then_each_mode(import_world().start(db, store, sessions).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_with_sessions_on_redis() {
    let Some(redis) = federa_tests::redis_sessions("mappers::import_with_sessions_on_redis").await else { return };
    let db = TestDb::sqlite();
    let store = db.store();
    import_then_each_mode(import_world().start(db, store, Arc::new(redis)).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_on_sqlite() {
    force_inherited(force_world().start_sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_on_sqlite() {
    downstream_claims(claims_world().start_sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_with_sessions_on_redis() {
    let Some(redis) = federa_tests::redis_sessions("mappers::claims_with_sessions_on_redis").await else { return };
    let db = TestDb::sqlite();
    let store = db.store();
    downstream_claims(claims_world().start(db, store, Arc::new(redis)).await).await;
}

/// With a BROKER_ID mapper the link is kept under the mapped subject; the
/// SSO session still answers the app's next sign-in in the same browser
/// (found through that link), and so does a `prompt=none` request.
async fn broker_id_keeps_sso(w: World) {
    let browser = Browser::new();
    w.sign_in(&browser).await;
    let id = the_user(&w).await["id"].as_str().unwrap().to_owned();
    let (_, links) = w.admin(reqwest::Method::GET, &format!("users/{id}/federated-identity"), Value::Null).await;
    assert!(links[0]["userId"].as_str().unwrap().starts_with("node:"), "the link is the template's: {links}");
    assert!(w.has_sso(&browser).await, "the second sign-in is answered from the SSO session");
    assert!(w.silent(&browser).await.is_ok(), "prompt=none answers a code from the SSO session");
}

fn broker_id_world() -> federa_tests::world::Builder {
    World::builder().realm(json!({
        "identityProviderMappers": [
            mapper("broker-id", "oidc-username-idp-mapper", json!({"template": "${ALIAS}:${CLAIM.sub}", "target": "BROKER_ID"})),
        ]
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_id_sso_on_sqlite() {
    broker_id_keeps_sso(broker_id_world().start_sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_id_sso_with_sessions_on_redis() {
    let Some(redis) = federa_tests::redis_sessions("mappers::broker_id_sso_with_sessions_on_redis").await else {
        return;
    };
    let db = TestDb::sqlite();
    let store = db.store();
    broker_id_keeps_sso(broker_id_world().start(db, store, Arc::new(redis)).await).await;
}
