//! A small in-memory fake of the broker's stores, for tests of what is purely
//! HTTP (authorization, error bodies, probes, metrics), and a harness that
//! builds the app without a socket. Real stores are tested elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::{middleware, test, web, App};
use async_trait::async_trait;
use federa_broker::keys::SigningKey;
use federa_broker::repr::{
    ClientRepresentation, FederatedIdentityRepresentation, IdentityProviderMapperRepresentation,
    IdentityProviderRepresentation, RealmRepresentation, RoleRepresentation, UserRepresentation,
};
use federa_broker::store::{AuditEvent, RealmBundle, RealmRecord, UserQuery};
use federa_broker::{
    AdminService, AuditStore, ClientStore, KeyStore, RealmStore, SessionStore, Store, StoreError, UpstreamStore,
    UserStore,
};
use federa_protocol::Secret;
use federa_web::{AppState, Metrics};

/// The admin token every test app accepts.
pub const TOKEN: &str = "s3cret-admin-token";

/// The public URL of every test app.
pub const PUBLIC_URL: &str = "http://federa.test";

/// A realm the admin API may change.
pub const API_REALM: &str = "demo";
/// Another one, whose name needs percent-encoding.
pub const SPACED_REALM: &str = "my realm";
/// A realm declared in a realm file.
pub const FILE_REALM: &str = "filed";
/// What the fake's `list_realms` fails with: it must never reach a client.
pub const BACKEND_SECRET: &str = "password=hunter2 host=db.internal:5432";

/// Knows three realms and nothing else; counts writes; its ping can fail.
#[derive(Default)]
pub struct FakeStore {
    pub writes: AtomicUsize,
    pub down: AtomicBool,
}

impl FakeStore {
    fn write(&self) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn record(name: &str, file: Option<&str>) -> RealmRecord {
    RealmRecord {
        repr: RealmRepresentation { id: Some(format!("id-{name}")), realm: Some(name.into()), ..Default::default() },
        managed_by: file.map(Into::into),
        source_digest: None,
    }
}

#[async_trait]
impl Store for FakeStore {
    async fn ping(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Backend("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl RealmStore for FakeStore {
    async fn list_realms(&self) -> Result<Vec<RealmRecord>, StoreError> {
        Err(StoreError::Backend(BACKEND_SECRET.into()))
    }
    async fn get_realm(&self, realm: &str) -> Result<Option<RealmRecord>, StoreError> {
        Ok(match realm {
            API_REALM | SPACED_REALM => Some(record(realm, None)),
            FILE_REALM => Some(record(realm, Some("/etc/federa/realms/filed.json"))),
            _ => None,
        })
    }
    async fn create_realm(&self, _: RealmBundle) -> Result<(), StoreError> {
        self.write()
    }
    async fn replace_realm_config(&self, _: RealmBundle) -> Result<(), StoreError> {
        self.write()
    }
    async fn update_realm(&self, _: &str, _: &RealmRepresentation) -> Result<(), StoreError> {
        self.write()
    }
    async fn delete_realm(&self, _: &str) -> Result<(), StoreError> {
        self.write()
    }
}

#[async_trait]
impl ClientStore for FakeStore {
    async fn list_clients(&self, _: &str) -> Result<Vec<ClientRepresentation>, StoreError> {
        Ok(vec![])
    }
    async fn find_client(&self, _: &str, _: &str) -> Result<Option<ClientRepresentation>, StoreError> {
        Ok(None)
    }
    async fn get_client(&self, _: &str, _: &str) -> Result<Option<ClientRepresentation>, StoreError> {
        Ok(None)
    }
    async fn create_client(&self, _: &str, _: &ClientRepresentation) -> Result<(), StoreError> {
        self.write()
    }
    async fn update_client(&self, _: &str, _: &ClientRepresentation) -> Result<(), StoreError> {
        self.write()
    }
    async fn delete_client(&self, _: &str, _: &str) -> Result<(), StoreError> {
        self.write()
    }
}

#[async_trait]
impl UpstreamStore for FakeStore {
    async fn list_idps(&self, _: &str) -> Result<Vec<IdentityProviderRepresentation>, StoreError> {
        Ok(vec![])
    }
    async fn get_idp(&self, _: &str, _: &str) -> Result<Option<IdentityProviderRepresentation>, StoreError> {
        Ok(None)
    }
    async fn create_idp(&self, _: &str, _: &IdentityProviderRepresentation) -> Result<(), StoreError> {
        self.write()
    }
    async fn update_idp(&self, _: &str, _: &IdentityProviderRepresentation) -> Result<(), StoreError> {
        self.write()
    }
    async fn delete_idp(&self, _: &str, _: &str) -> Result<(), StoreError> {
        self.write()
    }
    async fn list_mappers(&self, _: &str, _: &str) -> Result<Vec<IdentityProviderMapperRepresentation>, StoreError> {
        Ok(vec![])
    }
    async fn get_mapper(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> Result<Option<IdentityProviderMapperRepresentation>, StoreError> {
        Ok(None)
    }
    async fn create_mapper(&self, _: &str, _: &IdentityProviderMapperRepresentation) -> Result<(), StoreError> {
        self.write()
    }
    async fn update_mapper(&self, _: &str, _: &IdentityProviderMapperRepresentation) -> Result<(), StoreError> {
        self.write()
    }
    async fn delete_mapper(&self, _: &str, _: &str, _: &str) -> Result<(), StoreError> {
        self.write()
    }
}

#[async_trait]
impl UserStore for FakeStore {
    async fn list_roles(&self, _: &str) -> Result<Vec<RoleRepresentation>, StoreError> {
        Ok(vec![])
    }
    async fn create_role(&self, _: &str, _: &RoleRepresentation) -> Result<(), StoreError> {
        self.write()
    }
    async fn search_users(&self, _: &str, _: &UserQuery) -> Result<Vec<UserRepresentation>, StoreError> {
        Ok(vec![])
    }
    async fn get_user(&self, _: &str, _: &str) -> Result<Option<UserRepresentation>, StoreError> {
        Ok(None)
    }
    async fn create_user(&self, _: &str, _: &UserRepresentation) -> Result<(), StoreError> {
        self.write()
    }
    async fn update_user(&self, _: &str, _: &UserRepresentation) -> Result<(), StoreError> {
        self.write()
    }
    async fn delete_user(&self, _: &str, _: &str) -> Result<(), StoreError> {
        self.write()
    }
    async fn user_roles(&self, _: &str, _: &str) -> Result<Vec<RoleRepresentation>, StoreError> {
        Ok(vec![])
    }
    async fn grant_roles(&self, _: &str, _: &str, _: &[String]) -> Result<(), StoreError> {
        self.write()
    }
    async fn revoke_roles(&self, _: &str, _: &str, _: &[String]) -> Result<(), StoreError> {
        self.write()
    }
    async fn list_links(&self, _: &str, _: &str) -> Result<Vec<FederatedIdentityRepresentation>, StoreError> {
        Ok(vec![])
    }
    async fn create_link(
        &self,
        _: &str,
        _: &str,
        _: &FederatedIdentityRepresentation,
        _: Option<&Secret>,
    ) -> Result<(), StoreError> {
        self.write()
    }
    async fn create_linked_user(
        &self,
        _: &str,
        _: &UserRepresentation,
        _: &FederatedIdentityRepresentation,
        _: Option<&Secret>,
    ) -> Result<bool, StoreError> {
        self.write().map(|()| false)
    }
    async fn delete_link(&self, _: &str, _: &str, _: &str) -> Result<(), StoreError> {
        self.write()
    }
    async fn find_user_by_link(&self, _: &str, _: &str, _: &str) -> Result<Option<UserRepresentation>, StoreError> {
        Ok(None)
    }
    async fn link_token(&self, _: &str, _: &str, _: &str) -> Result<Option<Secret>, StoreError> {
        Ok(None)
    }
    async fn set_link_token(&self, _: &str, _: &str, _: &str, _: &Secret) -> Result<bool, StoreError> {
        self.write().map(|()| false)
    }
    async fn user_client_roles(&self, _: &str, _: &str, _: &str) -> Result<Vec<String>, StoreError> {
        Ok(vec![])
    }
    async fn grant_client_roles(&self, _: &str, _: &str, _: &str, _: &[String]) -> Result<(), StoreError> {
        self.write()
    }
    async fn revoke_client_roles(&self, _: &str, _: &str, _: &str, _: &[String]) -> Result<(), StoreError> {
        self.write()
    }
}

#[async_trait]
impl KeyStore for FakeStore {
    async fn signing_keys(&self, _: &str) -> Result<Vec<SigningKey>, StoreError> {
        Ok(vec![])
    }
}

#[async_trait]
impl AuditStore for FakeStore {
    async fn audit(&self, _: AuditEvent) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A session store that holds nothing; its ping can fail.
#[derive(Default)]
pub struct FakeSessions {
    pub down: AtomicBool,
}

#[async_trait]
impl SessionStore for FakeSessions {
    async fn ping(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Backend("redis: connection reset".into()))
        } else {
            Ok(())
        }
    }
    async fn put(&self, _: &str, _: &str, _: Duration) -> Result<(), StoreError> {
        Ok(())
    }
    async fn put_if_absent(&self, _: &str, _: &str, _: Duration) -> Result<bool, StoreError> {
        Ok(true)
    }
    async fn get(&self, _: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    async fn take(&self, _: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    async fn delete(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn replace(&self, _: &str, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn renew(&self, _: &str, _: &str, _: Duration) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn index_add(&self, _: &str, _: &str, _: Duration) -> Result<(), StoreError> {
        Ok(())
    }
    async fn index_members(&self, _: &str) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    async fn index_remove(&self, _: &str, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
    async fn index_delete(&self, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

/// An answer, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: web::Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// The shared parts of a test app; each request runs on an app built from
/// them, as the binary would build it.
pub struct Fixture {
    pub store: Arc<FakeStore>,
    pub sessions: Arc<FakeSessions>,
    pub metrics: Metrics,
}

impl Fixture {
    pub fn new() -> Self {
        Self { store: Arc::default(), sessions: Arc::default(), metrics: Metrics::new().unwrap() }
    }

    pub fn state(&self) -> AppState {
        AppState {
            admin: AdminService::new(self.store.clone()),
            sessions: self.sessions.clone(),
            admin_token: Secret::new(TOKEN),
            http: reqwest::Client::new(),
            metrics: self.metrics.clone(),
            public_url: PUBLIC_URL.into(),
            broker: federa_broker::flow::Broker::new(
                self.store.clone(),
                self.sessions.clone(),
                reqwest::Client::new(),
                PUBLIC_URL,
                Default::default(),
            ),
            themes: std::sync::Arc::new(federa_web::pages::Themes::load(None).expect("the default theme loads")),
        }
    }

    /// Sends a request as is.
    pub async fn send(&self, req: test::TestRequest) -> Reply {
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(self.state()))
                .wrap(middleware::from_fn(federa_web::metrics_middleware))
                .configure(federa_web::configure),
        )
        .await;
        let res = test::call_service(&app, req.to_request()).await;
        let status = res.status();
        let headers = res.headers().clone();
        let body = test::read_body(res).await;
        Reply { status, headers, body }
    }

    /// Sends a request with the admin token.
    pub async fn admin(&self, req: test::TestRequest) -> Reply {
        self.send(req.insert_header(("Authorization", format!("Bearer {TOKEN}")))).await
    }

    pub fn writes(&self) -> usize {
        self.store.writes.load(Ordering::SeqCst)
    }
}
