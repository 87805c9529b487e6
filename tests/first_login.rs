//! First sign-ins through the real upstream (node oidc-provider, which signs
//! in whoever the `login_hint` names): `federa-known-users` links the user a
//! provisioned federated identity names, else the user whose username is the
//! upstream's `preferred_username`, and refuses anyone else with nothing
//! created (a themed page, or `access_denied` to the app for prompt=none);
//! the default `first broker login` never takes over an existing account,
//! neither by email nor by username, and says so when the username is taken.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use federa_broker::SessionStore;
use federa_tests::browser::{query_params, Browser, Page};
use federa_tests::upstream::NodeIdp;
use federa_tests::world::{World, APP_CB, REALM, UPSTREAM_SECRET};
use federa_tests::TestDb;
use serde_json::{json, Value};

/// Signs the browser in to the app through `alias` as the upstream user
/// `who`; where it ended, and the tokens when a code came back.
async fn sign_in_as(
    w: &World,
    browser: &Browser,
    alias: &str,
    who: &str,
    extra: &[(&str, &str)],
) -> (Page, Option<federa_tests::world::Tokens>) {
    let app = w.app().await;
    let mut params = vec![("login_hint", who), ("kc_idp_hint", alias)];
    params.extend_from_slice(extra);
    let (page, verifier, nonce) = w.authorize(browser, &app, APP_CB, &[], &params).await;
    // A refusal page's address is Federa's callback, with the upstream's code.
    if page.url.starts_with(APP_CB) && query_params(&page.url).contains_key("code") {
        let tokens = w.redeem(&app, &page, verifier, &nonce).await;
        (page, Some(tokens))
    } else {
        (page, None)
    }
}

/// The id of the realm's user with this username.
async fn user_id(w: &World, username: &str) -> String {
    let users = w.users().await;
    let user = users.iter().find(|u| u["username"] == username).unwrap_or_else(|| panic!("no {username}: {users:?}"));
    user["id"].as_str().unwrap().to_owned()
}

async fn known_users_world(db: TestDb, store: federa_storage::DbStore, sessions: Arc<dyn SessionStore>) -> World {
    World::builder()
        .idp(json!({"firstBrokerLoginFlowAlias": "federa-known-users"}))
        .idp_config(json!({"loginHint": "true", "acceptsPromptNoneForwardFromClient": "true"}))
        .realm(json!({"users": [
            {"username": "alice", "email": "alice@corp.test"},
            // Provisioned for the upstream subject of bob, under another name.
            {"username": "carol", "federatedIdentities": [
                {"identityProvider": "node", "userId": "sub-bob", "userName": "bob"}
            ]},
        ]}))
        .start(db, store, sessions)
        .await
}

async fn known_users(db: TestDb, store: federa_storage::DbStore, sessions: Arc<dyn SessionStore>) {
    let w = known_users_world(db, store, sessions).await;
    let (alice, carol) = (user_id(&w, "alice").await, user_id(&w, "carol").await);

    // The upstream's bob is carol here: the provisioned link names her.
    let (page, tokens) = sign_in_as(&w, &Browser::new(), "node", "bob", &[]).await;
    let tokens = tokens.unwrap_or_else(|| panic!("bob signs in as carol: {:#?}\n{}", page.hops, page.body));
    assert_eq!(tokens.id_claims()["sub"], json!(carol));

    // alice has no link: she is found by the upstream's preferred_username
    // and linked, so her next sign-in goes through the link.
    let (page, tokens) = sign_in_as(&w, &Browser::new(), "node", "alice", &[]).await;
    let tokens = tokens.unwrap_or_else(|| panic!("alice is known: {:#?}\n{}", page.hops, page.body));
    assert_eq!(tokens.id_claims()["sub"], json!(alice));
    let (status, links) =
        w.admin(reqwest::Method::GET, &format!("users/{alice}/federated-identity"), Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(links[0]["identityProvider"], "node", "{links}");
    assert_eq!(links[0]["userId"], "sub-alice", "{links}");
    let (_, tokens) = sign_in_as(&w, &Browser::new(), "node", "alice", &[]).await;
    assert_eq!(tokens.unwrap().id_claims()["sub"], json!(alice));
    assert_eq!(w.users().await.len(), 2, "nobody was created");

    // dave is nobody here: a "not permitted" page, nothing created.
    let browser = Browser::new();
    let (page, tokens) = sign_in_as(&w, &browser, "node", "dave", &[]).await;
    assert!(tokens.is_none(), "{:#?}", page.hops);
    assert_eq!(page.status, 400, "{:#?}", page.hops);
    assert!(page.body.contains("Sign-in not permitted") && page.body.contains("Node IdP"), "{}", page.body);
    assert!(!page.url.starts_with(APP_CB), "a page, not a redirect: {:#?}", page.hops);
    assert_eq!(w.users().await.len(), 2, "nothing is created");

    // The same browser, now signed in upstream as dave, asks silently: the
    // app hears access_denied, and still nothing is created.
    assert_eq!(w.silent(&browser).await, Err("access_denied".into()));
    assert_eq!(w.users().await.len(), 2, "nothing is created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_users_on_sqlite() {
    let db = TestDb::sqlite();
    let store = db.store();
    let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
    known_users(db, store, sessions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_users_on_postgres_with_redis() {
    let Some(db) = TestDb::postgres("first_login::known_users_on_postgres_with_redis") else { return };
    let Some(redis) = federa_tests::redis_sessions("first_login::known_users_on_postgres_with_redis").await else {
        return;
    };
    let store = db.store();
    known_users(db, store, Arc::new(redis)).await;
}

/// A known user already linked to another subject of the provider is not
/// taken over by a second upstream account with the same preferred_username.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_users_never_relinks_a_linked_user() {
    let w = World::builder()
        .idp(json!({"firstBrokerLoginFlowAlias": "federa-known-users"}))
        .idp_config(json!({"loginHint": "true"}))
        .realm(json!({"users": [
            {"username": "erin", "federatedIdentities": [{"identityProvider": "node", "userId": "sub-someone-else"}]},
        ]}))
        .start_sqlite()
        .await;
    let (page, tokens) = sign_in_as(&w, &Browser::new(), "node", "erin", &[]).await;
    assert!(tokens.is_none(), "{:#?}", page.hops);
    assert!(page.body.contains("Sign-in not permitted"), "{}", page.body);
    let erin = user_id(&w, "erin").await;
    let (_, links) = w.admin(reqwest::Method::GET, &format!("users/{erin}/federated-identity"), Value::Null).await;
    assert_eq!(links[0]["userId"], "sub-someone-else", "{links}");
}

/// Under the default policy a username another account holds (a local
/// user, or a user of another provider) is never taken over: the newcomer
/// is refused with a page that says the username is taken and names
/// nothing of the other account. An email another user holds does not link
/// either: the new user gets it unverified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_username_is_refused_and_an_email_never_links() {
    let w = World::builder()
        .idp(json!({"trustEmail": true}))
        .idp_config(json!({"loginHint": "true"}))
        .realm(json!({"users": [
            {"username": "bob"},
            {"username": "someone", "email": "carl@upstream.test", "emailVerified": true},
        ]}))
        .start_sqlite()
        .await;
    // A second upstream, brokered as `other`, whose users have the same names.
    let other = NodeIdp::start(json!([{
        "client_id": "federa-2",
        "client_secret": UPSTREAM_SECRET,
        "redirect_uris": [format!("{}/realms/{REALM}/broker/other/endpoint", w.fed.base)],
        "token_endpoint_auth_method": "client_secret_basic",
    }]));
    let idp = json!({
        "alias": "other", "displayName": "Other IdP", "providerId": "oidc",
        "config": {
            "issuer": other.issuer, "clientId": "federa-2", "clientSecret": UPSTREAM_SECRET,
            "clientAuthMethod": "client_secret_basic", "defaultScope": "openid profile email", "loginHint": "true",
            "acceptsPromptNoneForwardFromClient": "true"
        }
    });
    assert_eq!(w.admin(reqwest::Method::POST, "identity-provider/instances", idp).await.0, 201);

    // alice through node is created; alice through other cannot have her name.
    let (_, tokens) = sign_in_as(&w, &Browser::new(), "node", "alice", &[]).await;
    let alice = user_id(&w, "alice").await;
    assert_eq!(tokens.unwrap().id_claims()["sub"], json!(alice));
    let before = w.users().await.len();
    let refused = Browser::new();
    let (page, tokens) = sign_in_as(&w, &refused, "other", "alice", &[]).await;
    assert!(tokens.is_none(), "{:#?}", page.hops);
    assert_eq!(page.status, 400, "{:#?}", page.hops);
    assert!(page.body.contains("Username already taken") && page.body.contains("alice"), "{}", page.body);
    assert!(!page.body.contains(&alice) && !page.body.contains("Node IdP"), "names nothing of the other account");
    assert_eq!(w.users().await.len(), before, "nothing is created");
    // The same browser still has its session at `other`: a silent request
    // forwarded there comes back for the taken name, and the app hears
    // access_denied (no page for a prompt=none request).
    let (page, tokens) = sign_in_as(&w, &refused, "other", "alice", &[("prompt", "none")]).await;
    assert!(tokens.is_none(), "{:#?}", page.hops);
    assert!(page.url.starts_with(APP_CB), "{:#?}\n{}", page.hops, page.body);
    assert!(page.hops.iter().any(|h| h.starts_with(&other.issuer)), "forwarded upstream: {:#?}", page.hops);
    assert_eq!(query_params(&page.url).get("error").map(String::as_str), Some("access_denied"), "{}", page.url);
    assert_eq!(w.users().await.len(), before, "nothing is created");
    let (_, links) = w.admin(reqwest::Method::GET, &format!("users/{alice}/federated-identity"), Value::Null).await;
    assert_eq!(links.as_array().unwrap().len(), 1, "alice keeps only her own link: {links}");

    // The local user bob is not taken over by the upstream's bob either.
    let (page, tokens) = sign_in_as(&w, &Browser::new(), "node", "bob", &[]).await;
    assert!(tokens.is_none(), "{:#?}", page.hops);
    assert!(page.body.contains("Username already taken"), "{}", page.body);
    assert_eq!(w.users().await.len(), before, "nothing is created");

    // carl's verified address belongs to someone: carl gets a new account,
    // the address unverified, and someone stays unlinked.
    let (_, tokens) = sign_in_as(&w, &Browser::new(), "node", "carl", &[]).await;
    let carl = user_id(&w, "carl").await;
    assert_eq!(tokens.unwrap().id_claims()["sub"], json!(carl));
    let users = w.users().await;
    let carl_user = users.iter().find(|u| u["username"] == "carl").unwrap();
    assert_eq!(carl_user["emailVerified"], json!(false), "{carl_user}");
    let someone = user_id(&w, "someone").await;
    let (_, links) = w.admin(reqwest::Method::GET, &format!("users/{someone}/federated-identity"), Value::Null).await;
    assert_eq!(links, json!([]));
}

/// `trustEmail`: the upstream's verified address is stored verified only by
/// a trusted provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_email_on_and_off() {
    for (trust, expected) in [(true, true), (false, false)] {
        let w = World::builder().idp(json!({"trustEmail": trust})).start_sqlite().await;
        let (_, tokens) = sign_in_as(&w, &Browser::new(), "node", "alice", &[]).await;
        assert!(tokens.is_some());
        let users = w.users().await;
        assert_eq!(users[0]["email"], "alice@upstream.test");
        assert_eq!(users[0]["emailVerified"], json!(expected), "trustEmail {trust}: {users:?}");
    }
}
