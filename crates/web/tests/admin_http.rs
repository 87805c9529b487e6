//! The admin API's HTTP behaviour on a fake store: authorization, unreadable
//! bodies, the error body of each broker error, `Location` headers, and
//! import-config against a small local upstream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use serde_json::json;
use support::{Fixture, API_REALM, BACKEND_SECRET, PUBLIC_URL, TOKEN};

fn new_realm(name: &str) -> serde_json::Value {
    // ES256 keeps key generation fast.
    json!({"realm": name, "defaultSignatureAlgorithm": "ES256"})
}

#[actix_web::test]
async fn missing_or_wrong_token_is_refused_and_changes_nothing() {
    let f = Fixture::new();
    let unauthorized = json!({"error": "unauthorized", "errorMessage": "a valid admin bearer token is required"});
    let requests = [
        TestRequest::get().uri("/admin/realms/demo"),
        TestRequest::get().uri("/admin/realms/demo").insert_header(("Authorization", "Bearer wrong")),
        TestRequest::get().uri("/admin/realms/demo").insert_header(("Authorization", format!("Bearer {TOKEN}x"))),
        TestRequest::get().uri("/admin/realms/demo").insert_header(("Authorization", format!("Basic {TOKEN}"))),
        TestRequest::get().uri("/admin/realms/demo").insert_header(("Authorization", "Bearer ")),
        TestRequest::post()
            .uri("/admin/realms")
            .insert_header(("Authorization", "Bearer wrong"))
            .set_json(new_realm("n")),
        TestRequest::delete().uri("/admin/realms/demo").insert_header(("Authorization", "Bearer wrong")),
        TestRequest::post()
            .uri("/admin/realms/demo/clients/x/client-secret")
            .insert_header(("Authorization", "Bearer wrong")),
        // Authorization is decided before the body is read.
        TestRequest::post()
            .uri("/admin/realms")
            .insert_header(("Authorization", "Bearer wrong"))
            .insert_header(("Content-Type", "application/json"))
            .set_payload("{not json"),
    ];
    for req in requests {
        let r = f.send(req).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert_eq!(r.json(), unauthorized);
    }
    assert_eq!(f.writes(), 0);

    let r = f.admin(TestRequest::post().uri("/admin/realms").set_json(new_realm("n"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.header("location"), Some(&*format!("{PUBLIC_URL}/admin/realms/n")));
    assert_eq!(f.writes(), 1);
}

#[actix_web::test]
async fn unreadable_bodies_answer_json_errors() {
    let f = Fixture::new();
    let json_req = |body: &str| {
        TestRequest::post()
            .uri("/admin/realms")
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body.to_owned())
    };

    let r = f.admin(json_req("{\"realm\": \"x\",")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let b = r.json();
    assert_eq!(b["error"], "invalid_request");
    assert!(b["errorMessage"].as_str().unwrap().contains("line 1"), "{b}");

    let r = f.admin(json_req("{\"realm\": \"x\", \"enabled\": \"yes\"}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let b = r.json();
    assert_eq!(b["error"], "invalid_request");
    assert!(b["errorMessage"].as_str().unwrap().contains("invalid type"), "{b}");

    let r = f.admin(TestRequest::post().uri("/admin/realms").set_payload("realm=x")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.json()["error"], "invalid_request");

    let r = f.admin(json_req(&" ".repeat(federa_web::JSON_LIMIT + 1))).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["error"], "invalid_request");

    let r = f.admin(TestRequest::get().uri("/admin/realms/demo/users?first=x")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["field"], "first");
    let r = f.admin(TestRequest::get().uri("/admin/realms/demo/users?max=-")).await;
    assert_eq!(r.json()["field"], "max");
    assert_eq!(f.writes(), 0);
}

#[actix_web::test]
async fn each_broker_error_has_its_status_and_body() {
    let f = Fixture::new();

    let r = f.admin(TestRequest::get().uri("/admin/realms/nope")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json(), json!({"error": "not_found", "errorMessage": "realm \"nope\" not found"}));

    let r = f.admin(TestRequest::post().uri("/admin/realms").set_json(json!({"displayName": "x"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json(), json!({"error": "invalid_request", "errorMessage": "realm: is required", "field": "realm"}));

    let r = f.admin(TestRequest::post().uri("/admin/realms").set_json(new_realm(API_REALM))).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.json()["error"], "conflict");

    let r = f.admin(TestRequest::put().uri("/admin/realms/filed").set_json(json!({"displayName": "x"}))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let b = r.json();
    assert_eq!(b["error"], "forbidden");
    let m = b["errorMessage"].as_str().unwrap();
    assert!(m.starts_with("realm \"filed\" is declared in the realm file /etc/federa/realms/filed.json"), "{m}");

    let r = f.admin(TestRequest::get().uri("/admin/realms")).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json()["error"], "unknown_error");
    assert!(!r.text().contains("hunter2") && !r.text().contains(BACKEND_SECRET));
    assert_eq!(f.writes(), 0);
}

#[actix_web::test]
async fn path_segments_are_decoded_and_locations_encoded() {
    let f = Fixture::new();
    let r = f.admin(TestRequest::get().uri("/admin/realms/my%20realm")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["realm"], "my realm");

    let r = f.admin(TestRequest::post().uri("/admin/realms").set_json(new_realm("a new realm"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.header("location"), Some(&*format!("{PUBLIC_URL}/admin/realms/a%20new%20realm")));

    let r = f.admin(TestRequest::post().uri("/admin/realms/my%20realm/roles").set_json(json!({"name": "x y"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.header("location"), Some(&*format!("{PUBLIC_URL}/admin/realms/my%20realm/roles/x%20y")));
}

mod import_config {
    use super::*;
    use actix_web::{web, App, HttpResponse, HttpServer};

    const PATH: &str = "/admin/realms/demo/identity-provider/import-config";

    /// A local upstream on 127.0.0.1:0; answers its base URL.
    fn upstream() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let issuer = base.clone();
        let server = HttpServer::new(move || {
            let issuer = issuer.clone();
            App::new()
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(move || {
                        let issuer = issuer.clone();
                        async move {
                            HttpResponse::Ok().json(json!({
                                "issuer": issuer,
                                "authorization_endpoint": format!("{issuer}/auth"),
                                "token_endpoint": format!("{issuer}/token"),
                                "jwks_uri": format!("{issuer}/jwks"),
                                "code_challenge_methods_supported": ["S256"],
                            }))
                        }
                    }),
                )
                .route("/html", web::get().to(|| async { HttpResponse::Ok().body("<html>hello</html>") }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        actix_web::rt::spawn(server);
        base
    }

    async fn import(f: &Fixture, body: serde_json::Value) -> support::Reply {
        f.admin(TestRequest::post().uri(PATH).set_json(body)).await
    }

    #[actix_web::test]
    async fn reads_a_discovery_document() {
        let f = Fixture::new();
        let base = upstream();
        let from = format!("{base}/.well-known/openid-configuration");
        let r = import(&f, json!({"providerId": "oidc", "fromUrl": from})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(
            r.json(),
            json!({
                "authorizationUrl": format!("{base}/auth"),
                "issuer": base,
                "jwksUrl": format!("{base}/jwks"),
                "metadataDescriptorUrl": from,
                "pkceEnabled": "true",
                "pkceMethod": "S256",
                "tokenUrl": format!("{base}/token"),
                "useJwksUrl": "true",
                "validateSignature": "true",
            })
        );
    }

    #[actix_web::test]
    async fn refusals_name_the_field() {
        let f = Fixture::new();
        let base = upstream();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/", l.local_addr().unwrap())
        };
        let cases = [
            (json!({"providerId": "saml", "fromUrl": format!("{base}/x")}), "providerId"),
            (json!({"fromUrl": format!("{base}/x")}), "providerId"),
            (json!({"providerId": "oidc"}), "fromUrl"),
            (json!({"providerId": "oidc", "fromUrl": "not a url"}), "fromUrl"),
            (json!({"providerId": "oidc", "fromUrl": "ftp://example.com/x"}), "fromUrl"),
            (json!({"providerId": "oidc", "fromUrl": format!("{base}/missing")}), "fromUrl"),
            (json!({"providerId": "oidc", "fromUrl": format!("{base}/html")}), "fromUrl"),
            (json!({"providerId": "oidc", "fromUrl": closed}), "fromUrl"),
        ];
        for (body, field) in cases {
            let r = import(&f, body.clone()).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
            let b = r.json();
            assert_eq!(b["error"], "invalid_request", "{body}");
            assert_eq!(b["field"], field, "{body}: {b}");
            assert!(!b["errorMessage"].as_str().unwrap().contains('\n'), "{b}");
        }

        let r = f
            .admin(
                TestRequest::post()
                    .uri("/admin/realms/nope/identity-provider/import-config")
                    .set_json(json!({"providerId": "oidc", "fromUrl": format!("{base}/x")})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}
