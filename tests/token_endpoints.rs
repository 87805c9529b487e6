//! The endpoints around tokens, end to end on a running Federa: the
//! client_credentials grant (RFC 6749 section 4.4) for clients with service
//! accounts, introspection (RFC 7662) and revocation (RFC 7009). User tokens
//! come from a real sign-in through the node upstream; the happy paths are
//! driven by the independent `openidconnect` client library, the refusals by
//! raw requests so that statuses and bodies are seen as sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use federa_tests::browser::Browser;
use federa_tests::world::{claims_of, header_of, World, APP_CB, APP_SECRET, REALM};
use openidconnect::core::{CoreClient, CoreErrorResponseType, CoreTokenType};
use openidconnect::{
    AccessToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IntrospectionUrl, OAuth2TokenResponse,
    RequestTokenError, Scope, TokenIntrospectionResponse, TokenResponse,
};
use serde_json::{json, Value};

const SVC_SECRET: &str = "svc-secret-a71c0d";
const NOSVC_SECRET: &str = "nosvc-secret-5e2f90";
const RS_SECRET: &str = "rs-secret-c4d7e2";

type Client = CoreClient<EndpointSet, EndpointNotSet, EndpointSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// The realm's clients besides `app` (which signs users in): `svc` has
/// service accounts, `nosvc` does not, `spa-svc` is public (with the flag,
/// which cannot help it), `rs` is a resource server that introspects.
fn clients() -> Vec<Value> {
    vec![
        json!({"clientId": "svc", "secret": SVC_SECRET, "serviceAccountsEnabled": true, "standardFlowEnabled": false}),
        json!({"clientId": "nosvc", "secret": NOSVC_SECRET}),
        json!({"clientId": "spa-svc", "publicClient": true, "serviceAccountsEnabled": true, "redirectUris": [APP_CB]}),
        json!({"clientId": "rs", "secret": RS_SECRET}),
    ]
}

/// The world with those clients.
async fn start() -> World {
    clients().into_iter().fold(World::builder(), |b, c| b.client(c)).start_sqlite().await
}

/// The realm's discovery document.
async fn discovery(w: &World) -> Value {
    reqwest::get(format!("{}/.well-known/openid-configuration", w.issuer())).await.unwrap().json().await.unwrap()
}

/// A client of the library, with the introspection endpoint that discovery names.
async fn client(w: &World, id: &str, secret: Option<&str>) -> Client {
    let doc = discovery(w).await;
    w.client(id, secret, APP_CB)
        .await
        .set_introspection_url(IntrospectionUrl::new(doc["introspection_endpoint"].as_str().unwrap().into()).unwrap())
}

/// A raw form POST to an endpoint, with HTTP Basic when `basic` names a
/// client; a body that is not JSON comes as a string.
async fn post(w: &World, name: &str, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> (u16, Value) {
    let (status, text) = w.post_form_text(name, form, basic).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// What the resource server `rs` learns about a token.
async fn introspect(w: &World, token: &str) -> Value {
    let (status, body) = post(w, "token/introspect", Some(("rs", RS_SECRET)), &[("token", token)]).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The userinfo endpoint's status for a token, and its WWW-Authenticate.
async fn userinfo_status(w: &World, token: &str) -> (u16, String) {
    let r = reqwest::Client::new().get(w.endpoint("userinfo")).bearer_auth(token).send().await.unwrap();
    let auth = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (r.status().as_u16(), auth)
}

/// Signs alice in through `app` and the node upstream; returns the access token.
async fn user_token(w: &World) -> String {
    w.sign_in(&Browser::new()).await.access_token
}

/// A client_credentials token of `svc`, through the library.
async fn service_token(w: &World) -> String {
    let svc = client(w, "svc", Some(SVC_SECRET)).await;
    let tokens = svc.exchange_client_credentials().unwrap().request_async(&w.http).await.unwrap();
    tokens.access_token().secret().clone()
}

/// A JWT's header (0) or payload (1), not verified.
fn part(jwt: &str, i: usize) -> Value {
    Value::Object(if i == 0 { header_of(jwt) } else { claims_of(jwt) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_gives_a_service_account_its_own_token() {
    let w = start().await;
    let svc = client(&w, "svc", Some(SVC_SECRET)).await;
    let tokens = svc
        .exchange_client_credentials()
        .unwrap()
        .add_scope(Scope::new("openid".into()))
        .request_async(&w.http)
        .await
        .unwrap();
    assert!(tokens.id_token().is_none(), "no user, no ID token");
    assert!(tokens.refresh_token().is_none(), "RFC 6749 section 4.4.3: no refresh token");
    assert_eq!(*tokens.token_type(), CoreTokenType::Bearer);
    let token = tokens.access_token().secret().clone();
    assert_eq!(part(&token, 0)["typ"], "at+jwt", "RFC 9068");
    let claims = part(&token, 1);
    assert_eq!(claims["sub"], "service-account-svc");
    assert_eq!(claims["client_id"], "svc");
    assert_eq!(claims["aud"], "svc");
    assert_eq!(claims["iss"], w.issuer());
    assert_eq!(claims["gty"], "client_credentials");
    assert_eq!(claims["scope"], "", "openid is not granted without a user");
    assert!(claims.get("sid").is_none(), "{claims}");
    let lifespan = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(Some(lifespan), tokens.expires_in().map(|d| d.as_secs() as i64));
    assert_eq!(lifespan, 300, "the realm's default access token lifespan");

    // A resource server sees it active, through the library too.
    let rs = client(&w, "rs", Some(RS_SECRET)).await;
    let answer = rs.introspect(&AccessToken::new(token.clone())).request_async(&w.http).await.unwrap();
    assert!(answer.active());
    assert_eq!(answer.client_id().map(|c| c.as_str()), Some("svc"));
    assert_eq!(answer.sub(), Some("service-account-svc"));
    assert_eq!(answer.token_type(), Some(&CoreTokenType::Bearer));
    assert_eq!(answer.iss(), Some(w.issuer().as_str()));
    let raw = introspect(&w, &token).await;
    assert!(raw.get("username").is_none() && raw.get("sid").is_none(), "no user, no session: {raw}");

    // Userinfo has no user to describe.
    let (status, auth) = userinfo_status(&w, &token).await;
    assert_eq!(status, 401);
    assert!(auth.contains("invalid_token"), "{auth}");

    // A scope Federa cannot grant is refused, not granted because it was asked for.
    let (status, body) =
        post(&w, "token", Some(("svc", SVC_SECRET)), &[("grant_type", "client_credentials"), ("scope", "admin")]).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_scope")), "{body}");

    // client_secret_post works as well.
    let (status, body) = post(
        &w,
        "token",
        None,
        &[("grant_type", "client_credentials"), ("client_id", "svc"), ("client_secret", SVC_SECRET)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("id_token").is_none(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_refuses_public_clients_without_service_accounts_and_wrong_secrets() {
    let w = start().await;
    let grant = ("grant_type", "client_credentials");
    let (status, body) = post(&w, "token", None, &[grant, ("client_id", "spa-svc")]).await;
    assert_eq!((status, &body["error"]), (400, &json!("unauthorized_client")), "public client: {body}");
    let (status, body) = post(&w, "token", Some(("nosvc", NOSVC_SECRET)), &[grant]).await;
    assert_eq!((status, &body["error"]), (400, &json!("unauthorized_client")), "no service accounts: {body}");
    let (status, body) = post(&w, "token", Some(("svc", "wrong")), &[grant]).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")), "wrong secret: {body}");

    // The library sees the same refusal.
    let nosvc = client(&w, "nosvc", Some(NOSVC_SECRET)).await;
    match nosvc.exchange_client_credentials().unwrap().request_async(&w.http).await {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(*e.error(), CoreErrorResponseType::UnauthorizedClient),
        other => panic!("expected unauthorized_client, got {other:?}"),
    }

    // The admin API says the flag is honoured on a confidential client and
    // useless on a public one.
    let warnings = |r: &reqwest::Response| -> Vec<String> {
        r.headers().get_all("warning").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    };
    let path = format!("/{REALM}/clients");
    let r = w
        .admin_response(reqwest::Method::POST, &path, json!({"clientId": "svc2", "serviceAccountsEnabled": true}))
        .await;
    assert_eq!(r.status().as_u16(), 201);
    assert!(warnings(&r).iter().all(|h| !h.contains("serviceAccountsEnabled")), "{:?}", warnings(&r));
    let public = json!({"clientId": "pub2", "publicClient": true, "serviceAccountsEnabled": true});
    let r = w.admin_response(reqwest::Method::POST, &path, public).await;
    assert_eq!(r.status().as_u16(), 201);
    assert!(
        warnings(&r).iter().any(|h| h.contains("serviceAccountsEnabled: has no effect on a public client")),
        "{:?}",
        warnings(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_needs_an_authenticated_confidential_client() {
    let w = start().await;
    let token = service_token(&w).await;
    let (status, body) = post(&w, "token/introspect", None, &[("token", &token)]).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")), "no client authentication: {body}");
    let (status, body) = post(&w, "token/introspect", Some(("rs", "wrong")), &[("token", &token)]).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")), "wrong secret: {body}");
    let (status, body) = post(&w, "token/introspect", None, &[("token", &token), ("client_id", "spa-svc")]).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")), "public client: {body}");
    let (status, body) = post(&w, "token/introspect", Some(("rs", RS_SECRET)), &[]).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")), "no token: {body}");

    // Anything not valid is inactive, and nothing more is said.
    assert_eq!(introspect(&w, "not-a-token").await, json!({"active": false}));
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(introspect(&w, &forged).await, json!({"active": false}), "a bad signature");
    assert_eq!(introspect(&w, &token).await["active"], true);

    // A token of another realm is not active here.
    let other = json!({"realm": "other", "clients": clients()});
    assert_eq!(w.admin_response(reqwest::Method::POST, "", other).await.status().as_u16(), 201);
    let r = reqwest::Client::new()
        .post(format!("{}/realms/other/protocol/openid-connect/token", w.fed.base))
        .basic_auth("svc", Some(SVC_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let elsewhere = r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(&w, &elsewhere).await, json!({"active": false}), "a token of realm other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_service_accounts_off_ends_the_clients_tokens() {
    let w = start().await;
    let token = service_token(&w).await;
    assert_eq!(introspect(&w, &token).await["active"], true);
    let (_, clients) = w.admin(reqwest::Method::GET, "clients?clientId=svc", Value::Null).await;
    let mut svc = clients[0].clone();
    svc["serviceAccountsEnabled"] = json!(false);
    let id = svc["id"].as_str().unwrap().to_owned();
    assert_eq!(w.admin(reqwest::Method::PUT, &format!("clients/{id}"), svc).await.0, 204);
    assert_eq!(introspect(&w, &token).await, json!({"active": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_ends_a_token_for_its_client_only() {
    let w = start().await;
    let token = user_token(&w).await;
    let claims = part(&token, 1);

    // Active, with its user and session.
    let seen = introspect(&w, &token).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["username"], "alice");
    assert_eq!(seen["client_id"], "app");
    assert_eq!(seen["token_type"], "Bearer");
    for claim in ["sub", "sid", "jti", "exp", "iat", "aud", "iss", "scope"] {
        assert_eq!(seen[claim], claims[claim], "{claim}");
    }
    assert_eq!(userinfo_status(&w, &token).await.0, 200);

    // Another client may not revoke it (RFC 7009 section 2.1), and nothing changes.
    let (status, body) = post(&w, "revoke", Some(("rs", RS_SECRET)), &[("token", &token)]).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")), "{body}");
    assert_eq!(introspect(&w, &token).await["active"], true);
    // Client authentication and the token are required.
    let (status, _) = post(&w, "revoke", Some(("app", "wrong")), &[("token", &token)]).await;
    assert_eq!(status, 401);
    let (status, body) = post(&w, "revoke", Some(("app", APP_SECRET)), &[]).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")), "{body}");
    assert_eq!(introspect(&w, &token).await["active"], true);

    // Its client revokes it, with a hint. (The library refuses to revoke
    // over plain HTTP, as RFC 7009 section 2 requires TLS.)
    let (status, body) =
        post(&w, "revoke", Some(("app", APP_SECRET)), &[("token", &token), ("token_type_hint", "access_token")]).await;
    assert_eq!((status, &body), (200, &json!("")), "200 and no body");
    assert_eq!(introspect(&w, &token).await, json!({"active": false}));
    let (status, auth) = userinfo_status(&w, &token).await;
    assert_eq!(status, 401);
    assert!(auth.contains("invalid_token"), "{auth}");

    // Revoking again, or revoking garbage, answers 200 (RFC 7009 section 2.2).
    for t in [token.as_str(), "garbage"] {
        let (status, body) =
            post(&w, "revoke", Some(("app", APP_SECRET)), &[("token", t), ("token_type_hint", "refresh_token")]).await;
        assert_eq!(status, 200, "{t}: {body}");
    }

    // A client revokes its own client_credentials token, with client_secret_post.
    let own = service_token(&w).await;
    let (status, body) =
        post(&w, "revoke", None, &[("token", &own), ("client_id", "svc"), ("client_secret", SVC_SECRET)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(introspect(&w, &own).await, json!({"active": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_session_ended_is_inactive() {
    let w = start().await;
    let token = user_token(&w).await;
    assert_eq!(introspect(&w, &token).await["active"], true);
    let sid = part(&token, 1)["sid"].as_str().unwrap().to_owned();
    let key = federa_broker::flow::state::sso_key_public(REALM, &sid);
    assert!(w.fed.state.sessions.get(&key).await.unwrap().is_some(), "the session is where the test looks");
    w.fed.state.sessions.delete(&key).await.unwrap();
    assert_eq!(introspect(&w, &token).await, json!({"active": false}));
    assert_eq!(userinfo_status(&w, &token).await.0, 401);
    // Revoking it changes nothing and is not an error.
    let (status, _) = post(&w, "revoke", Some(("app", APP_SECRET)), &[("token", &token)]).await;
    assert_eq!(status, 200);
}

/// Signs claims with the realm's own active key, as Federa would: tokens no
/// grant issues, to probe the check itself.
async fn sign_as_realm(w: &World, claims: Value) -> String {
    use federa_broker::KeyStore as _;
    let keys = w.store.signing_keys(REALM).await.unwrap();
    let k = keys.iter().find(|k| k.active).unwrap();
    let signer = federa_protocol::TokenSigner::from_pem(&k.alg, &k.kid, k.private_pem.expose().as_bytes()).unwrap();
    signer.sign("at+jwt", claims.as_object().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_passes_without_a_session_only_as_a_clients_own() {
    let w = start().await;
    let real = part(&service_token(&w).await, 1);
    let with = |changes: Value| {
        let mut c = real.clone();
        for (k, v) in changes.as_object().unwrap() {
            match v {
                Value::Null => c.as_object_mut().unwrap().remove(k),
                v => c.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        c
    };
    // The harness signs what Federa accepts: the client's token, re-signed, is active.
    assert_eq!(introspect(&w, &sign_as_realm(&w, real.clone()).await).await["active"], true);

    // A user's token without its sid (no client_credentials mark) never passes.
    let user = with(json!({"gty": null, "sub": "3f1e2d4c-user", "client_id": "app", "aud": "app"}));
    let t = sign_as_realm(&w, user).await;
    assert_eq!(introspect(&w, &t).await, json!({"active": false}), "a user token without a session");
    assert_eq!(userinfo_status(&w, &t).await.0, 401);
    // The mark does not excuse a sid that names no live session: never both.
    let both = with(json!({"sid": "no-such-session"}));
    assert_eq!(introspect(&w, &sign_as_realm(&w, both).await).await, json!({"active": false}), "mark and sid");
    // The mark is honoured only for the client's own service account, of a client allowed the grant.
    for (changes, what) in [
        (json!({"sub": "3f1e2d4c-user"}), "another subject"),
        (json!({"client_id": "nosvc", "sub": "service-account-nosvc"}), "a client without service accounts"),
        (json!({"client_id": "spa-svc", "sub": "service-account-spa-svc"}), "a public client"),
        (json!({"gty": "authorization_code"}), "another grant's mark"),
    ] {
        let t = sign_as_realm(&w, with(changes)).await;
        assert_eq!(introspect(&w, &t).await, json!({"active": false}), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_names_the_served_endpoints() {
    let w = start().await;
    let doc = discovery(&w).await;
    assert!(doc["grant_types_supported"].as_array().unwrap().contains(&json!("client_credentials")), "{doc}");
    let revoke = doc["revocation_endpoint"].as_str().unwrap();
    let r = reqwest::Client::new()
        .post(revoke)
        .basic_auth("app", Some(APP_SECRET))
        .form(&[("token", "garbage")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let introspect = doc["introspection_endpoint"].as_str().unwrap();
    let r = reqwest::Client::new().post(introspect).form(&[("token", "garbage")]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "served, and asks for client authentication");
}
