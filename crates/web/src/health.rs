//! Liveness and readiness, for orchestrators: live while the process serves
//! HTTP, ready only while the database and the session store answer.

use std::future::Future;
use std::time::Duration;

use actix_web::{web, HttpResponse};
use federa_broker::StoreError;
use serde_json::json;

use crate::state::AppState;

/// How long a ping may take before the dependency counts as down; a hung
/// database must not hang the readiness probe too.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET /health/live`.
pub(crate) async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "UP"}))
}

/// Pings one dependency; logs why when it is down.
async fn check(name: &str, ping: impl Future<Output = Result<(), StoreError>>) -> bool {
    match actix_web::rt::time::timeout(PING_TIMEOUT, ping).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            log::error!("readiness: the {name} is down: {e}");
            false
        }
        Err(_) => {
            log::error!("readiness: the {name} did not answer within {} seconds", PING_TIMEOUT.as_secs());
            false
        }
    }
}

fn word(up: bool) -> &'static str {
    if up {
        "UP"
    } else {
        "DOWN"
    }
}

/// `GET /health/ready`.
pub(crate) async fn ready(st: web::Data<AppState>) -> HttpResponse {
    let database = check("database", st.admin.store().ping()).await;
    let sessions = check("session store", st.sessions.ping()).await;
    let up = database && sessions;
    let body = json!({
        "status": word(up),
        "checks": {"database": word(database), "sessions": word(sessions)},
    });
    if up {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
