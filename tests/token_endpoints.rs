//! The endpoints around tokens, end to end on a running Federa: the
//! client_credentials grant (RFC 6749 section 4.4) for clients with service
//! accounts, introspection (RFC 7662) and revocation (RFC 7009). User tokens
//! come from a real sign-in through the node upstream; the happy paths are
//! driven by the independent `openidconnect` client library, the refusals by
//! raw requests so that statuses and bodies are seen as sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use base64::Engine as _;
use federa_broker::SessionStore;
use federa_tests::browser::{query_params, Browser};
use federa_tests::upstream::NodeIdp;
use federa_tests::{RunningFedera, TestDb, ADMIN_TOKEN};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreProviderMetadata, CoreTokenType,
};
use openidconnect::{
    AccessToken, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IntrospectionUrl, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, RequestTokenError, Scope,
    TokenIntrospectionResponse, TokenResponse,
};
use serde_json::{json, Value};

const REALM: &str = "tok";
const APP_CB: &str = "http://app.test/cb";
const APP_SECRET: &str = "app-secret-3b8e51";
const SVC_SECRET: &str = "svc-secret-a71c0d";
const NOSVC_SECRET: &str = "nosvc-secret-5e2f90";
const RS_SECRET: &str = "rs-secret-c4d7e2";
const UPSTREAM_SECRET: &str = "federa-at-node-secret-7a1b2c";

type Client = CoreClient<EndpointSet, EndpointNotSet, EndpointSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

struct World {
    fed: RunningFedera,
    raw: reqwest::Client,
    http: openidconnect::reqwest::Client,
    node: Option<NodeIdp>,
    store: federa_storage::DbStore,
    _db: TestDb,
}

/// The realm's clients: `app` signs users in, `svc` has service accounts,
/// `nosvc` does not, `spa-svc` is public (with the flag, which cannot help
/// it), `rs` is a resource server that introspects.
fn clients() -> Value {
    json!([
        {"clientId": "app", "secret": APP_SECRET, "redirectUris": [APP_CB]},
        {"clientId": "svc", "secret": SVC_SECRET, "serviceAccountsEnabled": true, "standardFlowEnabled": false},
        {"clientId": "nosvc", "secret": NOSVC_SECRET},
        {"clientId": "spa-svc", "publicClient": true, "serviceAccountsEnabled": true, "redirectUris": [APP_CB]},
        {"clientId": "rs", "secret": RS_SECRET}
    ])
}

impl World {
    /// Federa with the realm; with `upstream`, also the node provider, so
    /// that users can sign in.
    async fn start(upstream: bool) -> World {
        let db = TestDb::sqlite();
        let store = db.store();
        let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
        let fed = RunningFedera::start(&store, sessions);
        let node = upstream.then(|| {
            NodeIdp::start(json!([{
                "client_id": "federa",
                "client_secret": UPSTREAM_SECRET,
                "redirect_uris": [format!("{}/realms/{REALM}/broker/node/endpoint", fed.base)],
                "token_endpoint_auth_method": "client_secret_basic",
            }]))
        });
        let raw = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let w = World { fed, raw, http, node, store, _db: db };
        let idps: Vec<Value> = w
            .node
            .iter()
            .map(|n| {
                json!({"alias": "node", "providerId": "oidc", "config": {
                    "issuer": n.issuer, "clientId": "federa", "clientSecret": UPSTREAM_SECRET,
                    "clientAuthMethod": "client_secret_basic", "defaultScope": "openid profile email"
                }})
            })
            .collect();
        let realm = json!({"realm": REALM, "clients": clients(), "identityProviders": idps});
        assert_eq!(w.admin(reqwest::Method::POST, "", realm).await.status().as_u16(), 201);
        w
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> reqwest::Response {
        self.raw
            .request(method, format!("{}{path}", self.fed.admin()))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    fn issuer(&self) -> String {
        format!("{}/realms/{REALM}", self.fed.base)
    }

    fn endpoint(&self, name: &str) -> String {
        format!("{}/protocol/openid-connect/{name}", self.issuer())
    }

    /// A client of the library, with the introspection endpoint that
    /// discovery names.
    async fn client(&self, id: &str, secret: Option<&str>) -> Client {
        let issuer = IssuerUrl::new(self.issuer()).unwrap();
        let meta = CoreProviderMetadata::discover_async(issuer, &self.http).await.unwrap();
        let doc: Value = self
            .raw
            .get(format!("{}/.well-known/openid-configuration", self.issuer()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        CoreClient::from_provider_metadata(meta, ClientId::new(id.into()), secret.map(|s| ClientSecret::new(s.into())))
            .set_redirect_uri(RedirectUrl::new(APP_CB.into()).unwrap())
            .set_introspection_url(
                IntrospectionUrl::new(doc["introspection_endpoint"].as_str().unwrap().into()).unwrap(),
            )
    }

    /// A raw form POST to an endpoint, with HTTP Basic when `basic` names a client.
    async fn post(&self, name: &str, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self.raw.post(self.endpoint(name)).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// What the resource server `rs` learns about a token.
    async fn introspect(&self, token: &str) -> Value {
        let (status, body) = self.post("token/introspect", Some(("rs", RS_SECRET)), &[("token", token)]).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The userinfo endpoint's status for a token.
    async fn userinfo_status(&self, token: &str) -> (u16, String) {
        let r = self.raw.get(self.endpoint("userinfo")).bearer_auth(token).send().await.unwrap();
        let auth = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        (r.status().as_u16(), auth)
    }

    /// Signs alice in through `app` and the node upstream; returns the access token.
    async fn user_token(&self) -> String {
        let app = self.client("app", Some(APP_SECRET)).await;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, _, _) = app
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        let page = Browser::new().navigate(url.as_str(), APP_CB).await;
        let code = query_params(&page.url).get("code").cloned().unwrap_or_else(|| panic!("no code: {:#?}", page.hops));
        let tokens = app
            .exchange_code(AuthorizationCode::new(code))
            .unwrap()
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .unwrap();
        assert!(tokens.id_token().is_some());
        tokens.access_token().secret().clone()
    }

    /// A client_credentials token of `svc`, through the library.
    async fn service_token(&self) -> String {
        let svc = self.client("svc", Some(SVC_SECRET)).await;
        let tokens = svc.exchange_client_credentials().unwrap().request_async(&self.http).await.unwrap();
        tokens.access_token().secret().clone()
    }
}

fn part(jwt: &str, i: usize) -> Value {
    let p = jwt.split('.').nth(i).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_gives_a_service_account_its_own_token() {
    let w = World::start(false).await;
    let svc = w.client("svc", Some(SVC_SECRET)).await;
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
    let rs = w.client("rs", Some(RS_SECRET)).await;
    let answer = rs.introspect(&AccessToken::new(token.clone())).request_async(&w.http).await.unwrap();
    assert!(answer.active());
    assert_eq!(answer.client_id().map(|c| c.as_str()), Some("svc"));
    assert_eq!(answer.sub(), Some("service-account-svc"));
    assert_eq!(answer.token_type(), Some(&CoreTokenType::Bearer));
    assert_eq!(answer.iss(), Some(w.issuer().as_str()));
    let raw = w.introspect(&token).await;
    assert!(raw.get("username").is_none() && raw.get("sid").is_none(), "no user, no session: {raw}");

    // Userinfo has no user to describe.
    let (status, auth) = w.userinfo_status(&token).await;
    assert_eq!(status, 401);
    assert!(auth.contains("invalid_token"), "{auth}");

    // A scope Federa cannot grant is refused, not granted because it was asked for.
    let (status, body) =
        w.post("token", Some(("svc", SVC_SECRET)), &[("grant_type", "client_credentials"), ("scope", "admin")]).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_scope")), "{body}");

    // client_secret_post works as well.
    let (status, body) = w
        .post(
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
    let w = World::start(false).await;
    let grant = ("grant_type", "client_credentials");
    let (status, body) = w.post("token", None, &[grant, ("client_id", "spa-svc")]).await;
    assert_eq!((status, &body["error"]), (400, &json!("unauthorized_client")), "public client: {body}");
    let (status, body) = w.post("token", Some(("nosvc", NOSVC_SECRET)), &[grant]).await;
    assert_eq!((status, &body["error"]), (400, &json!("unauthorized_client")), "no service accounts: {body}");
    let (status, body) = w.post("token", Some(("svc", "wrong")), &[grant]).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")), "wrong secret: {body}");

    // The library sees the same refusal.
    let nosvc = w.client("nosvc", Some(NOSVC_SECRET)).await;
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
    let r = w.admin(reqwest::Method::POST, &path, json!({"clientId": "svc2", "serviceAccountsEnabled": true})).await;
    assert_eq!(r.status().as_u16(), 201);
    assert!(warnings(&r).iter().all(|h| !h.contains("serviceAccountsEnabled")), "{:?}", warnings(&r));
    let public = json!({"clientId": "pub2", "publicClient": true, "serviceAccountsEnabled": true});
    let r = w.admin(reqwest::Method::POST, &path, public).await;
    assert_eq!(r.status().as_u16(), 201);
    assert!(
        warnings(&r).iter().any(|h| h.contains("serviceAccountsEnabled: has no effect on a public client")),
        "{:?}",
        warnings(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_needs_an_authenticated_confidential_client() {
    let w = World::start(false).await;
    let token = w.service_token().await;
    let (status, body) = w.post("token/introspect", None, &[("token", &token)]).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")), "no client authentication: {body}");
    let (status, body) = w.post("token/introspect", Some(("rs", "wrong")), &[("token", &token)]).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")), "wrong secret: {body}");
    let (status, body) = w.post("token/introspect", None, &[("token", &token), ("client_id", "spa-svc")]).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")), "public client: {body}");
    let (status, body) = w.post("token/introspect", Some(("rs", RS_SECRET)), &[]).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")), "no token: {body}");

    // Anything not valid is inactive, and nothing more is said.
    assert_eq!(w.introspect("not-a-token").await, json!({"active": false}));
    let mut forged = token.clone();
    forged.pop();
    forged.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(w.introspect(&forged).await, json!({"active": false}), "a bad signature");
    assert_eq!(w.introspect(&token).await["active"], true);

    // A token of another realm is not active here.
    let other = json!({"realm": "other", "clients": clients()});
    assert_eq!(w.admin(reqwest::Method::POST, "", other).await.status().as_u16(), 201);
    let r = w
        .raw
        .post(format!("{}/realms/other/protocol/openid-connect/token", w.fed.base))
        .basic_auth("svc", Some(SVC_SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let elsewhere = r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(w.introspect(&elsewhere).await, json!({"active": false}), "a token of realm other");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_service_accounts_off_ends_the_clients_tokens() {
    let w = World::start(false).await;
    let token = w.service_token().await;
    assert_eq!(w.introspect(&token).await["active"], true);
    let r = w.admin(reqwest::Method::GET, &format!("/{REALM}/clients?clientId=svc"), Value::Null).await;
    let mut svc = r.json::<Value>().await.unwrap()[0].clone();
    svc["serviceAccountsEnabled"] = json!(false);
    let id = svc["id"].as_str().unwrap().to_owned();
    let r = w.admin(reqwest::Method::PUT, &format!("/{REALM}/clients/{id}"), svc).await;
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(w.introspect(&token).await, json!({"active": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_ends_a_token_for_its_client_only() {
    let w = World::start(true).await;
    let token = w.user_token().await;
    let claims = part(&token, 1);

    // Active, with its user and session.
    let seen = w.introspect(&token).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["username"], "alice");
    assert_eq!(seen["client_id"], "app");
    assert_eq!(seen["token_type"], "Bearer");
    for claim in ["sub", "sid", "jti", "exp", "iat", "aud", "iss", "scope"] {
        assert_eq!(seen[claim], claims[claim], "{claim}");
    }
    assert_eq!(w.userinfo_status(&token).await.0, 200);

    // Another client may not revoke it (RFC 7009 section 2.1), and nothing changes.
    let (status, body) = w.post("revoke", Some(("rs", RS_SECRET)), &[("token", &token)]).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")), "{body}");
    assert_eq!(w.introspect(&token).await["active"], true);
    // Client authentication and the token are required.
    let (status, _) = w.post("revoke", Some(("app", "wrong")), &[("token", &token)]).await;
    assert_eq!(status, 401);
    let (status, body) = w.post("revoke", Some(("app", APP_SECRET)), &[]).await;
    assert_eq!((status, &body["error"]), (400, &json!("invalid_request")), "{body}");
    assert_eq!(w.introspect(&token).await["active"], true);

    // Its client revokes it, with a hint. (The library refuses to revoke
    // over plain HTTP, as RFC 7009 section 2 requires TLS.)
    let (status, body) =
        w.post("revoke", Some(("app", APP_SECRET)), &[("token", &token), ("token_type_hint", "access_token")]).await;
    assert_eq!((status, &body), (200, &json!("")), "200 and no body");
    assert_eq!(w.introspect(&token).await, json!({"active": false}));
    let (status, auth) = w.userinfo_status(&token).await;
    assert_eq!(status, 401);
    assert!(auth.contains("invalid_token"), "{auth}");

    // Revoking again, or revoking garbage, answers 200 (RFC 7009 section 2.2).
    for t in [token.as_str(), "garbage"] {
        let (status, body) =
            w.post("revoke", Some(("app", APP_SECRET)), &[("token", t), ("token_type_hint", "refresh_token")]).await;
        assert_eq!(status, 200, "{t}: {body}");
    }

    // A client revokes its own client_credentials token, with client_secret_post.
    let own = w.service_token().await;
    let (status, body) =
        w.post("revoke", None, &[("token", &own), ("client_id", "svc"), ("client_secret", SVC_SECRET)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(w.introspect(&own).await, json!({"active": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_whose_session_ended_is_inactive() {
    let w = World::start(true).await;
    let token = w.user_token().await;
    assert_eq!(w.introspect(&token).await["active"], true);
    let sid = part(&token, 1)["sid"].as_str().unwrap().to_owned();
    let key = federa_broker::flow::state::sso_key_public(REALM, &sid);
    assert!(w.fed.state.sessions.get(&key).await.unwrap().is_some(), "the session is where the test looks");
    w.fed.state.sessions.delete(&key).await.unwrap();
    assert_eq!(w.introspect(&token).await, json!({"active": false}));
    assert_eq!(w.userinfo_status(&token).await.0, 401);
    // Revoking it changes nothing and is not an error.
    let (status, _) = w.post("revoke", Some(("app", APP_SECRET)), &[("token", &token)]).await;
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
    let w = World::start(false).await;
    let real = part(&w.service_token().await, 1);
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
    assert_eq!(w.introspect(&sign_as_realm(&w, real.clone()).await).await["active"], true);

    // A user's token without its sid (no client_credentials mark) never passes.
    let user = with(json!({"gty": null, "sub": "3f1e2d4c-user", "client_id": "app", "aud": "app"}));
    let t = sign_as_realm(&w, user).await;
    assert_eq!(w.introspect(&t).await, json!({"active": false}), "a user token without a session");
    assert_eq!(w.userinfo_status(&t).await.0, 401);
    // The mark does not excuse a sid that names no live session: never both.
    let both = with(json!({"sid": "no-such-session"}));
    assert_eq!(w.introspect(&sign_as_realm(&w, both).await).await, json!({"active": false}), "mark and sid");
    // The mark is honoured only for the client's own service account, of a client allowed the grant.
    for (changes, what) in [
        (json!({"sub": "3f1e2d4c-user"}), "another subject"),
        (json!({"client_id": "nosvc", "sub": "service-account-nosvc"}), "a client without service accounts"),
        (json!({"client_id": "spa-svc", "sub": "service-account-spa-svc"}), "a public client"),
        (json!({"gty": "authorization_code"}), "another grant's mark"),
    ] {
        let t = sign_as_realm(&w, with(changes)).await;
        assert_eq!(w.introspect(&t).await, json!({"active": false}), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_names_the_served_endpoints() {
    let w = World::start(false).await;
    let doc: Value = w
        .raw
        .get(format!("{}/.well-known/openid-configuration", w.issuer()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["grant_types_supported"].as_array().unwrap().contains(&json!("client_credentials")), "{doc}");
    let revoke = doc["revocation_endpoint"].as_str().unwrap();
    let r = w.raw.post(revoke).basic_auth("app", Some(APP_SECRET)).form(&[("token", "garbage")]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let introspect = doc["introspection_endpoint"].as_str().unwrap();
    let r = w.raw.post(introspect).form(&[("token", "garbage")]).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "served, and asks for client authentication");
}
