//! Health probes and metrics on a fake store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::Ordering;

use actix_web::http::StatusCode;
use actix_web::test::TestRequest;
use serde_json::json;
use support::Fixture;

#[actix_web::test]
async fn live_is_up() {
    let f = Fixture::new();
    let r = f.send(TestRequest::get().uri("/health/live")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"status": "UP"}));
}

#[actix_web::test]
async fn ready_follows_the_database_and_the_session_store() {
    let f = Fixture::new();
    let ready = || f.send(TestRequest::get().uri("/health/ready"));

    let r = ready().await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"status": "UP", "checks": {"database": "UP", "sessions": "UP"}}));

    f.store.down.store(true, Ordering::SeqCst);
    let r = ready().await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json(), json!({"status": "DOWN", "checks": {"database": "DOWN", "sessions": "UP"}}));

    f.store.down.store(false, Ordering::SeqCst);
    f.sessions.down.store(true, Ordering::SeqCst);
    let r = ready().await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json(), json!({"status": "DOWN", "checks": {"database": "UP", "sessions": "DOWN"}}));
}

#[actix_web::test]
async fn metrics_count_requests_in_the_text_format() {
    let f = Fixture::new();
    f.send(TestRequest::get().uri("/health/live")).await;
    f.send(TestRequest::get().uri("/admin/realms")).await;

    let r = f.send(TestRequest::get().uri("/metrics")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4"));
    let text = r.text();
    assert!(text.contains("# TYPE federa_http_requests_total counter"), "{text}");
    assert!(text.contains(r#"federa_http_requests_total{method="GET",status="200"} 1"#), "{text}");
    assert!(text.contains(r#"federa_http_requests_total{method="GET",status="401"} 1"#), "{text}");
    assert!(text.contains("federa_http_request_duration_seconds_count 2"), "{text}");
}
