//! The findings of a probe of the running server (issue 7 point 8), each
//! pinned end to end on the app as the server builds it: repeated OAuth
//! parameters, realm names that are path segments of their own, lifespans
//! that overflow, and the security headers of every page.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use actix_web::test::{call_service, read_body, TestRequest};
use federa_tests::{app, call, state, TestDb};
use serde_json::{json, Value};

const REALM: &str = "probe";
const APP_CB: &str = "https://app.test/cb";
const APP_SECRET: &str = "s3cret-app-of-the-probe";
const AUTH: &str = "/realms/probe/protocol/openid-connect/auth";
const TOKEN: &str = "/realms/probe/protocol/openid-connect/token";

/// A realm with one confidential client and two identity providers, so
/// that a valid authorization request shows the login page.
fn realm() -> Value {
    let idp = |alias: &str| {
        json!({"alias": alias, "providerId": "oidc", "config": {
            "clientId": "federa", "clientSecret": "up-secret",
            "authorizationUrl": format!("https://{alias}.test/auth"), "tokenUrl": format!("https://{alias}.test/token"),
        }})
    };
    json!({
        "realm": REALM,
        "clients": [{"clientId": "app", "secret": APP_SECRET, "redirectUris": [APP_CB]}],
        "identityProviders": [idp("one"), idp("two")],
    })
}

/// What a browser-facing response came back with.
struct Answer {
    status: u16,
    headers: actix_web::http::header::HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The parameters of the `Location` redirect's query.
    fn location_params(&self) -> Vec<(String, String)> {
        let loc = self.header("location").unwrap_or_else(|| panic!("no Location: {} {}", self.status, self.body));
        let url = url::Url::parse(loc).unwrap();
        assert_eq!(format!("{}://{}{}", url.scheme(), url.host_str().unwrap(), url.path()), APP_CB);
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }
}

macro_rules! send {
    ($app:expr, $req:expr) => {{
        let resp = call_service(&$app, $req.to_request()).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = String::from_utf8_lossy(&read_body(resp).await).into_owned();
        Answer { status, headers, body }
    }};
}

/// An authorization request's query: the valid base, then `extra` appended
/// as is (so a parameter can appear twice).
fn auth_query(extra: &str) -> String {
    let cb: String = url::form_urlencoded::byte_serialize(APP_CB.as_bytes()).collect();
    format!("client_id=app&redirect_uri={cb}&response_type=code&scope=openid&state=st-1{extra}")
}

/// Asserts a themed error page: 400, HTML, no redirect.
fn assert_page(a: &Answer, what: &str) {
    assert_eq!(a.status, 400, "{what}: {}", a.body);
    assert!(a.header("location").is_none(), "{what}: never a redirect before client and redirect_uri are proven");
    assert!(a.body.contains("<html"), "{what}: a themed page: {}", a.body);
}

/// Asserts an invalid_request error at the client's redirect URI, with
/// `state` when it was sent once, and `iss`.
fn assert_client_error(a: &Answer, what: &str, state: Option<&str>) {
    assert_eq!(a.status, 302, "{what}: {}", a.body);
    let params = a.location_params();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("error"), Some("invalid_request"), "{what}: {params:?}");
    assert!(get("error_description").is_some_and(|d| d.contains("more than once")), "{what}: {params:?}");
    assert_eq!(get("state"), state, "{what}: {params:?}");
    assert_eq!(get("iss"), Some("http://federa.test/realms/probe"), "{what}: {params:?}");
}

/// RFC 6749 sections 3.1 and 3.2: parameters must not be repeated.
#[actix_web::test]
async fn repeated_parameters_are_refused() {
    let db = TestDb::sqlite();
    let store = db.store();
    let st = state(&store);
    let app = app!(st);
    let (s, _, body) = call!(app, POST, "/admin/realms", realm());
    assert_eq!(s, 201, "{body}");

    // The base request is fine: the login page.
    let ok = send!(app, TestRequest::get().uri(&format!("{AUTH}?{}", auth_query(""))));
    assert_eq!(ok.status, 200, "{}", ok.body);

    // Before client_id and redirect_uri are proven: a page, even when both
    // copies are the same value.
    for extra in ["&client_id=app", "&client_id=other", "&redirect_uri=https%3A%2F%2Fapp.test%2Fcb"] {
        let a = send!(app, TestRequest::get().uri(&format!("{AUTH}?{}", auth_query(extra))));
        assert_page(&a, extra);
        assert!(a.body.contains("more than once"), "{extra}: the page says why: {}", a.body);
    }

    // After: invalid_request at the redirect URI, with state and iss.
    for extra in [
        "&response_mode=form_post&response_mode=query",
        "&response_mode=query&response_mode=query",
        "&scope=openid",
        "&nonce=a&nonce=b",
        "&response_type=code",
    ] {
        let a = send!(app, TestRequest::get().uri(&format!("{AUTH}?{}{extra}", auth_query(""))));
        assert_client_error(&a, extra, Some("st-1"));
    }
    // With response_mode=form_post sent once, the error is posted.
    let a = send!(
        app,
        TestRequest::get().uri(&format!("{AUTH}?{}&response_mode=form_post&nonce=a&nonce=b", auth_query("")))
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let form = federa_tests::browser::auto_form(&a.body).unwrap();
    assert_eq!(form.field("error"), Some("invalid_request"), "{}", a.body);
    assert_eq!(form.field("state"), Some("st-1"));
    assert_eq!(form.field("iss"), Some("http://federa.test/realms/probe"));
    // A repeated state cannot be echoed: which one would it be?
    let a = send!(app, TestRequest::get().uri(&format!("{AUTH}?{}&state=st-2", auth_query(""))));
    assert_client_error(&a, "state twice", None);
    // The same through a POSTed authorization request.
    let a = send!(
        app,
        TestRequest::post()
            .uri(AUTH)
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(auth_query("&response_mode=form_post&response_mode=query"))
    );
    assert_client_error(&a, "POST response_mode twice", Some("st-1"));
    let a = send!(
        app,
        TestRequest::post()
            .uri(AUTH)
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload(auth_query("&redirect_uri=https%3A%2F%2Fevil.test%2Fcb"))
    );
    assert_page(&a, "POST redirect_uri twice");

    // The token endpoint: 400 invalid_request, whatever the repeated parameter.
    for body in [
        format!("grant_type=authorization_code&code=a&code=b&redirect_uri={APP_CB}&client_id=app&client_secret={APP_SECRET}"),
        format!("grant_type=authorization_code&grant_type=authorization_code&code=a&redirect_uri={APP_CB}&client_id=app&client_secret={APP_SECRET}"),
        format!("grant_type=authorization_code&code=a&redirect_uri={APP_CB}&client_id=app&client_id=app&client_secret={APP_SECRET}"),
    ] {
        let a = send!(
            app,
            TestRequest::post()
                .uri(TOKEN)
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .set_payload(body.clone())
        );
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        let json: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(json["error"], "invalid_request", "{body}: {json}");
        assert!(json["error_description"].as_str().is_some_and(|d| d.contains("more than once")), "{json}");
        assert_eq!(a.header("cache-control"), Some("no-store"));
    }

    // The broker endpoints: an answer with a repeated state or code is not
    // taken apart; the person sees a page.
    for (method, query) in [("GET", "state=a&state=b&code=c"), ("GET", "state=a&code=c&code=d")] {
        let a = send!(app, TestRequest::get().uri(&format!("/realms/probe/broker/none/endpoint?{query}")));
        assert_page(&a, &format!("{method} callback {query}"));
        assert!(a.body.contains("more than once"), "{query}: {}", a.body);
    }
    let a = send!(
        app,
        TestRequest::post()
            .uri("/realms/probe/broker/none/endpoint")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload("state=a&state=b&code=c")
    );
    assert_page(&a, "POST callback with state twice");
    let a = send!(app, TestRequest::get().uri("/realms/probe/broker/none/login?flow=a&flow=b"));
    assert_page(&a, "chooser link with flow twice");
}

/// `.` and `..` are path segments of their own: a realm so named would have
/// an issuer that URL normalisation rewrites.
#[actix_web::test]
async fn dot_realm_names_are_refused() {
    let db = TestDb::sqlite();
    let store = db.store();
    let st = state(&store);
    let app = app!(st);
    for name in [".", "..", " .. "] {
        let (s, _, body) = call!(app, POST, "/admin/realms", json!({"realm": name}));
        assert_eq!((s, body["field"].clone()), (400, json!("realm")), "{name:?}: {body}");
        // And inside a whole realm export.
        let (s, _, body) = call!(app, POST, "/admin/realms", json!({"realm": name, "clients": realm()["clients"]}));
        assert_eq!((s, body["field"].clone()), (400, json!("realm")), "{name:?} import: {body}");
    }
    let (s, _, list) = call!(app, GET, "/admin/realms");
    assert_eq!((s, list), (200, json!([])), "nothing was created");
    // Names with dots inside are fine.
    let (s, _, body) = call!(app, POST, "/admin/realms", json!({"realm": "a.b..c"}));
    assert_eq!(s, 201, "{body}");
    // An update cannot rename a realm to one either.
    let (s, _, body) = call!(app, PUT, "/admin/realms/a.b..c", json!({"realm": ".."}));
    assert_eq!((s, body["field"].clone()), (400, json!("realm")), "{body}");
    // Identity-provider aliases are path segments too.
    let idp = json!({"alias": "..", "providerId": "oidc",
                     "config": {"clientId": "c", "issuer": "https://idp.test"}});
    let (s, _, body) = call!(app, POST, "/admin/realms/a.b..c/identity-provider/instances", idp);
    assert_eq!((s, body["field"].clone()), (400, json!("alias")), "{body}");
}

/// Lifespans near `i64::MAX` wrapped when added to the clock, and tokens
/// were born expired.
#[actix_web::test]
async fn lifespans_are_bounded() {
    let db = TestDb::sqlite();
    let store = db.store();
    let st = state(&store);
    let app = app!(st);
    for field in ["accessTokenLifespan", "ssoSessionIdleTimeout", "ssoSessionMaxLifespan", "offlineSessionIdleTimeout"]
    {
        for value in [json!(i64::MAX), json!(i64::MAX - 100), json!(10 * 366 * 86_400), json!(-1)] {
            let mut r = json!({"realm": "big"});
            r[field] = value.clone();
            let (s, _, body) = call!(app, POST, "/admin/realms", r);
            assert_eq!((s, body["field"].clone()), (400, json!(field)), "{field}={value}: {body}");
        }
    }
    let (s, _, list) = call!(app, GET, "/admin/realms");
    assert_eq!((s, list), (200, json!([])), "nothing was created");

    // Sane values, and 0 (the default), are kept.
    let sane = json!({"realm": "sane", "accessTokenLifespan": 600, "ssoSessionIdleTimeout": 0,
                      "ssoSessionMaxLifespan": 10 * 365 * 86_400});
    let (s, _, body) = call!(app, POST, "/admin/realms", sane);
    assert_eq!(s, 201, "{body}");
    let (_, _, got) = call!(app, GET, "/admin/realms/sane");
    assert_eq!(got["accessTokenLifespan"], 600);
    let (s, _, body) = call!(app, PUT, "/admin/realms/sane", json!({"realm": "sane", "accessTokenLifespan": i64::MAX}));
    assert_eq!((s, body["field"].clone()), (400, json!("accessTokenLifespan")), "{body}");
    let (_, _, got) = call!(app, GET, "/admin/realms/sane");
    assert_eq!(got["accessTokenLifespan"], 600, "a refused update changes nothing");
}

/// The headers every HTML page carries, with its Content-Security-Policy.
fn assert_page_headers(a: &Answer, what: &str) -> String {
    assert!(a.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{what}: {:?}", a.headers);
    assert_eq!(a.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(a.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(a.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"), "{what}");
    let csp = a.header("content-security-policy").unwrap_or_else(|| panic!("{what}: no CSP: {:?}", a.headers));
    for part in ["default-src 'none'", "frame-ancestors 'none'", "style-src http://federa.test"] {
        assert!(csp.contains(part), "{what}: {part} missing in {csp}");
    }
    csp.to_owned()
}

#[actix_web::test]
async fn every_page_carries_the_security_headers() {
    let db = TestDb::sqlite();
    let store = db.store();
    let st = state(&store);
    let app = app!(st);
    let (s, _, body) = call!(app, POST, "/admin/realms", realm());
    assert_eq!(s, 201, "{body}");

    // Error pages: an unknown realm, an unknown client, a bad callback.
    let a =
        send!(app, TestRequest::get().uri(&format!("/realms/nope/protocol/openid-connect/auth?{}", auth_query(""))));
    assert_eq!(a.status, 404);
    let csp = assert_page_headers(&a, "unknown realm");
    assert!(!csp.contains("script-src"), "no script on an error page: {csp}");
    let a = send!(app, TestRequest::get().uri(&format!("{AUTH}?client_id=nobody&redirect_uri={APP_CB}")));
    assert_eq!(a.status, 400);
    assert_page_headers(&a, "unknown client");
    let a = send!(app, TestRequest::get().uri("/realms/probe/broker/none/endpoint?state=unknown&code=c"));
    assert!(a.status >= 400, "{}", a.status);
    assert_page_headers(&a, "callback with an unknown state");

    // The login page.
    let a = send!(app, TestRequest::get().uri(&format!("{AUTH}?{}", auth_query(""))));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_page_headers(&a, "login page");

    // The form_post re-post page: its one script runs under the CSP's nonce.
    let a = send!(
        app,
        TestRequest::post()
            .uri("/realms/probe/broker/none/endpoint")
            .insert_header(("content-type", "application/x-www-form-urlencoded"))
            .set_payload("state=s&code=c")
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let csp = assert_page_headers(&a, "form_post page");
    let nonce = a.body.split("<script nonce=\"").nth(1).and_then(|r| r.split('"').next()).unwrap();
    assert!(csp.contains(&format!("script-src 'nonce-{nonce}'")), "{csp}");
    assert!(csp.contains("form-action http://federa.test"), "{csp}");
}
