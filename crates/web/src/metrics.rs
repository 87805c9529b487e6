//! Prometheus metrics: a registry of Federa's own (no global), a middleware
//! that counts and times every request, and `GET /metrics` in the text format.
//!
//! `configure` cannot add a middleware, so the app must wrap it itself:
//! `App::new().wrap(actix_web::middleware::from_fn(federa_web::metrics_middleware))`.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use federa_broker::BrokerError;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry, TextEncoder};

use crate::error::WebError;
use crate::state::AppState;

/// Federa's metrics and the registry that holds them.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: Histogram,
}

impl Metrics {
    /// A fresh registry with the HTTP metrics registered.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("federa_http_requests_total", "HTTP requests answered, by method and status."),
            &["method", "status"],
        )?;
        let duration = Histogram::with_opts(HistogramOpts::new(
            "federa_http_request_duration_seconds",
            "Time from receiving an HTTP request to sending its response headers.",
        ))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self { registry, requests, duration })
    }

    /// The registry, for other parts of Federa to register their own metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one answered request.
    pub fn observe(&self, method: &Method, status: u16, seconds: f64) {
        self.requests.with_label_values(&[method_label(method), &status.to_string()]).inc();
        self.duration.observe(seconds);
    }

    /// Everything in the registry, in the Prometheus text format.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}

/// The method as a label. Extension methods share one label so that a client
/// cannot grow the number of series without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// Counts and times every request. Wrap the whole app with it:
/// `.wrap(actix_web::middleware::from_fn(federa_web::metrics_middleware))`.
/// It reads [`Metrics`] from the app's `web::Data<AppState>`; without one it
/// records nothing.
pub async fn metrics_middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.metrics.clone());
    let method = req.method().clone();
    let start = Instant::now();
    let result = next.call(req).await;
    if let Some(metrics) = metrics {
        let status = match &result {
            Ok(response) => response.status(),
            Err(e) => e.as_response_error().status_code(),
        };
        metrics.observe(&method, status.as_u16(), start.elapsed().as_secs_f64());
    }
    result
}

/// `GET /metrics`.
pub(crate) async fn metrics(st: web::Data<AppState>) -> Result<HttpResponse, WebError> {
    let text = st.metrics.render().map_err(|e| BrokerError::Internal(format!("encoding metrics: {e}")))?;
    Ok(HttpResponse::Ok().content_type(prometheus::TEXT_FORMAT).body(text))
}
