//! What every handler shares: the admin operations, the stores, the admin
//! token, an outgoing HTTP client, the metrics and the public URL. Handed to
//! the app once as `web::Data<AppState>`; there is no global.

use std::sync::Arc;

use federa_broker::flow::Broker;
use federa_broker::{AdminService, SessionStore};
use federa_protocol::Secret;

use crate::metrics::Metrics;
use crate::pages::Themes;

/// The state behind every route.
pub struct AppState {
    /// The admin operations (and, through them, the store).
    pub admin: AdminService,
    /// Short-lived state: flows, codes, SSO sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// The bearer token of the admin API.
    pub admin_token: Secret,
    /// The client for outgoing requests (`identity-provider/import-config`).
    pub http: reqwest::Client,
    /// The Prometheus metrics.
    pub metrics: Metrics,
    /// The base of every issuer and `Location`, with no trailing slash.
    pub public_url: String,
    /// Brokered sign-in: the OpenID Provider and the upstream relying party.
    pub broker: Broker,
    /// The login themes.
    pub themes: Arc<Themes>,
}
