//! The typed model end to end: settings Federa stores but does not honour
//! yet are named in the admin API's answers, a provider that cannot sign
//! anyone in as configured (no issuer) refuses its sign-ins with a clear
//! page naming the setting,
//! a pending sign-in stores only bounded, forwarded parameters, and the token
//! endpoint does not tell an unknown client from a wrong secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use diesel::{QueryableByName, RunQueryDsl as _};
use federa_broker::SessionStore;
use federa_tests::{RunningFedera, TestDb, ADMIN_TOKEN};
use serde_json::{json, Value};

const REALM: &str = "model";
const APP_CB: &str = "http://app.test/cb";
const APP_SECRET: &str = "app-secret-91c3e7";

struct World {
    fed: RunningFedera,
    db: TestDb,
    raw: reqwest::Client,
}

impl World {
    async fn start() -> World {
        let db = TestDb::sqlite();
        let store = db.store();
        let sessions: Arc<dyn SessionStore> = Arc::new(store.embedded_sessions());
        let fed = RunningFedera::start(&store, sessions);
        let raw = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let w = World { fed, db, raw };
        let idp = |alias: &str, extra: Value| {
            let mut config = json!({
                "clientId": "federa", "clientSecret": "s",
                "authorizationUrl": "http://127.0.0.1:9/auth", "tokenUrl": "http://127.0.0.1:9/token",
                "issuer": "http://127.0.0.1:9", "jwksUrl": "http://127.0.0.1:9/jwks",
                "forwardParameters": "acr_values"
            });
            if let Value::Object(m) = extra {
                config.as_object_mut().unwrap().extend(m);
            }
            json!({"alias": alias, "providerId": "oidc", "config": config})
        };
        let realm = json!({
            "realm": REALM,
            "clients": [{"clientId": "app", "secret": APP_SECRET, "redirectUris": [APP_CB]}],
            "identityProviders": [
                idp("one", json!({})),
                idp("two", json!({})),
            ]
        });
        let r = w.admin(reqwest::Method::POST, "", realm).await;
        assert_eq!(r.status().as_u16(), 201);
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

    async fn authorize(&self, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut q = vec![
            ("client_id", "app"),
            ("redirect_uri", APP_CB),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "st"),
        ];
        q.extend_from_slice(extra);
        self.raw.get(format!("{}/protocol/openid-connect/auth", self.issuer())).query(&q).send().await.unwrap()
    }
}

fn warnings(r: &reqwest::Response) -> Vec<String> {
    r.headers().get_all("warning").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_without_effect_are_named_in_the_admin_answer() {
    let w = World::start().await;
    let base = json!({
        "alias": "later", "providerId": "oidc",
        "config": {"clientId": "f", "issuer": "https://idp.test", "validateSignature": "false", "backchannelSupported": "true"}
    });
    let path = format!("/{REALM}/identity-provider/instances");
    let r = w.admin(reqwest::Method::POST, &path, base.clone()).await;
    assert_eq!(r.status().as_u16(), 201);
    let got = warnings(&r);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].starts_with("299 federa \"config.validateSignature: false: signatures"), "{got:?}");
    assert!(got[1].contains("config.backchannelSupported"), "{got:?}");

    // The same answer on update; none once the settings are gone.
    let r = w.admin(reqwest::Method::PUT, &format!("{path}/later"), base).await;
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(warnings(&r).len(), 2);
    let plain =
        json!({"alias": "later", "providerId": "oidc", "config": {"clientId": "f", "issuer": "https://idp.test"}});
    let r = w.admin(reqwest::Method::PUT, &format!("{path}/later"), plain).await;
    assert_eq!(r.status().as_u16(), 204);
    assert!(warnings(&r).is_empty(), "{:?}", warnings(&r));

    // Mappers apply at sign-in: no notice; a client role (Federa has realm
    // roles only) is said in the answer.
    let mapper = json!({"name": "m", "identityProviderAlias": "later", "identityProviderMapper": "hardcoded-attribute-idp-mapper",
        "config": {"syncMode": "INHERIT", "attribute": "a", "attribute.value": "v"}});
    let r = w.admin(reqwest::Method::POST, &format!("{path}/later/mappers"), mapper).await;
    assert_eq!(r.status().as_u16(), 201);
    assert!(warnings(&r).is_empty(), "{:?}", warnings(&r));
    let mapper = json!({"name": "c", "identityProviderAlias": "later", "identityProviderMapper": "hardcoded-role-idp-mapper",
        "config": {"role": "app.admin"}});
    let r = w.admin(reqwest::Method::POST, &format!("{path}/later/mappers"), mapper).await;
    assert_eq!(r.status().as_u16(), 201);
    assert!(
        warnings(&r).iter().any(|h| h.contains("config.role: client roles are not supported")),
        "{:?}",
        warnings(&r)
    );

    // A client that asks for an authentication Federa does not do yet.
    let x509_client =
        json!({"clientId": "x509-app", "clientAuthenticatorType": "client-x509", "redirectUris": [APP_CB]});
    let r = w.admin(reqwest::Method::POST, &format!("/{REALM}/clients"), x509_client).await;
    assert_eq!(r.status().as_u16(), 201);
    assert!(warnings(&r).iter().any(|h| h.contains("clientAuthenticatorType: client-x509 is not supported yet")));
    // A client-jwt client without keys cannot authenticate: said too.
    let jwt_client = json!({"clientId": "jwt-app", "clientAuthenticatorType": "client-jwt", "redirectUris": [APP_CB]});
    let r = w.admin(reqwest::Method::POST, &format!("/{REALM}/clients"), jwt_client).await;
    assert_eq!(r.status().as_u16(), 201);
    assert!(warnings(&r).iter().any(|h| h.contains("attributes.jwks.url: neither jwks.url nor jwks.string")));

    // A realm created whole names the settings of its parts.
    let realm = json!({"realm": "whole", "identityProviders": [
        {"alias": "x", "providerId": "oidc", "config": {"clientId": "f", "issuer": "https://idp.test", "validateSignature": "false"}}
    ]});
    let r = w.admin(reqwest::Method::POST, "", realm).await;
    assert_eq!(r.status().as_u16(), 201);
    assert!(
        warnings(&r).iter().any(|h| h.contains("identityProviders[0].config.validateSignature")),
        "{:?}",
        warnings(&r)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_without_issuer_is_named_and_refuses_with_the_missing_setting() {
    let w = World::start().await;
    // Like the vc-authn provider of a real export: endpoints, but no issuer anywhere.
    let idp = json!({"alias": "noiss", "providerId": "oidc", "config": {
        "clientId": "f", "clientSecret": "s", "authorizationUrl": "http://127.0.0.1:9/authorize",
        "tokenUrl": "http://127.0.0.1:9/token", "jwksUrl": "http://127.0.0.1:9/jwks"}});
    let r = w.admin(reqwest::Method::POST, &format!("/{REALM}/identity-provider/instances"), idp).await;
    assert_eq!(r.status().as_u16(), 201);
    assert!(warnings(&r).iter().any(|h| h.contains("config.issuer: is missing")), "{:?}", warnings(&r));
    let r = w.authorize(&[("kc_idp_hint", "noiss")]).await;
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.headers().get("location").is_none(), "the browser is not sent upstream");
    let body = r.text().await.unwrap();
    assert!(body.contains("config.issuer is not set"), "the page names the missing setting: {body}");
}

#[derive(QueryableByName)]
struct Longest {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_sign_in_stores_only_bounded_forwarded_parameters() {
    let w = World::start().await;
    let big = "x".repeat(60 * 1024);
    // Two providers on the page: the flow waits in the session store for the choice.
    let r = w.authorize(&[("junk", &big), ("acr_values", "gold")]).await;
    assert_eq!(r.status().as_u16(), 200, "the login page");
    let path = w.db.sqlite_path.clone().unwrap();
    let mut conn = <diesel::SqliteConnection as diesel::Connection>::establish(path.to_str().unwrap()).unwrap();
    let longest: Longest = diesel::sql_query("SELECT COALESCE(MAX(LENGTH(value)), 0) AS n FROM session_entries")
        .get_result(&mut conn)
        .unwrap();
    assert!(longest.n > 0, "the flow was stored");
    assert!(longest.n < 4096, "an unforwarded parameter was stored: {} bytes", longest.n);

    // A forwarded parameter beyond the bound is refused to the client, not stored.
    let r = w.authorize(&[("acr_values", &big)]).await;
    let location = r.headers().get("location").unwrap().to_str().unwrap().to_owned();
    assert!(location.starts_with(APP_CB) && location.contains("error=invalid_request"), "{location}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_client_and_a_wrong_secret_get_the_same_answer() {
    let w = World::start().await;
    let token = format!("{}/protocol/openid-connect/token", w.issuer());
    let mut answers = Vec::new();
    for (id, secret) in [("app", "wrong-secret"), ("no-such-client", "wrong-secret")] {
        for basic in [true, false] {
            let form = [("grant_type", "authorization_code"), ("code", "c"), ("redirect_uri", APP_CB)];
            let mut req = w.raw.post(&token).form(&form);
            req = if basic {
                req.basic_auth(id, Some(secret))
            } else {
                w.raw.post(&token).form(&[
                    ("grant_type", "authorization_code"),
                    ("code", "c"),
                    ("redirect_uri", APP_CB),
                    ("client_id", id),
                    ("client_secret", secret),
                ])
            };
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            answers.push((basic, status, body));
        }
    }
    assert_eq!(answers[0].1, 401);
    assert_eq!(answers[0].2["error"], "invalid_client");
    assert_eq!(answers[0], (true, answers[2].1, answers[2].2.clone()), "Basic: unknown client vs wrong secret");
    assert_eq!(answers[1], (false, answers[3].1, answers[3].2.clone()), "form: unknown client vs wrong secret");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_cache_can_be_cleared_by_an_admin() {
    let w = World::start().await;
    let r = w.admin(reqwest::Method::POST, &format!("/{REALM}/clear-keys-cache"), Value::Null).await;
    assert_eq!(r.status().as_u16(), 204);
    let r = w.admin(reqwest::Method::POST, "/no-such-realm/clear-keys-cache", Value::Null).await;
    assert_eq!(r.status().as_u16(), 404);
    let r = w.raw.post(format!("{}/{REALM}/clear-keys-cache", w.fed.admin())).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "admins only");
}
