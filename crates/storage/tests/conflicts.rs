//! A refused write names the rule it broke, on SQLite and on PostgreSQL
//! (when `FEDERA_TEST_DATABASE_URL` names a server): a taken username is told
//! apart from an id collision, an already-linked upstream account or a
//! reference to a user that does not exist.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use diesel::{Connection as _, RunQueryDsl as _};
use federa_broker::keys::SigningKey;
use federa_broker::repr::{
    ClientRepresentation, FederatedIdentityRepresentation, IdentityProviderMapperRepresentation,
    IdentityProviderRepresentation, RealmRepresentation, RoleRepresentation, UserRepresentation,
};
use federa_broker::store::{Entity, RealmBundle, RealmRecord, UserImport};
use federa_broker::{BrokerError, ClientStore, RealmStore, StoreError, UniqueKey, UpstreamStore, UserStore};
use federa_protocol::Secret;
use federa_storage::{DbStore, MasterKey};

const PG_ENV: &str = "FEDERA_TEST_DATABASE_URL";
const REALM: &str = "acme";

/// A migrated database of its own, removed afterwards.
struct Db {
    store: DbStore,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Db {
    fn open(url: &str, dir: Option<tempfile::TempDir>, pg: Option<(String, String)>) -> Self {
        let store = DbStore::open(url, MasterKey::new([7; 32])).unwrap();
        store.migrate().unwrap();
        Self { store, _dir: dir, pg }
    }

    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("federa.db").display());
        Self::open(&url, Some(dir), None)
    }

    fn postgres(test: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var(PG_ENV) else {
            eprintln!("SKIPPED {test} on PostgreSQL: {PG_ENV} is not set");
            return None;
        };
        let name = format!("federa_test_{}", uuid::Uuid::new_v4().simple());
        let mut c = diesel::PgConnection::establish(&admin_url).expect("connect to the PostgreSQL test server");
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut c).unwrap();
        let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
        Some(Self::open(&format!("{base}/{name}"), None, Some((admin_url, name))))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.pg {
            if let Ok(mut c) = diesel::PgConnection::establish(admin_url) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c);
            }
        }
    }
}

/// Runs `check` on SQLite, then on PostgreSQL when one is configured.
async fn on_both<F, Fut>(test: &str, check: F)
where
    F: Fn(DbStore) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let db = Db::sqlite();
    check(db.store.clone()).await;
    if let Some(db) = Db::postgres(test) {
        check(db.store.clone()).await;
    }
}

fn realm(id: &str, name: &str) -> RealmRecord {
    RealmRecord {
        repr: RealmRepresentation { id: Some(id.into()), realm: Some(name.into()), ..Default::default() },
        managed_by: None,
        source_digest: None,
    }
}

fn bundle(realm: RealmRecord) -> RealmBundle {
    RealmBundle {
        realm,
        clients: vec![],
        identity_providers: vec![],
        mappers: vec![],
        roles: vec![],
        users: vec![],
        keys: vec![],
    }
}

fn user(id: &str, username: &str) -> UserRepresentation {
    UserRepresentation {
        id: Some(id.into()),
        username: Some(username.into()),
        enabled: Some(true),
        ..Default::default()
    }
}

fn client(id: &str, client_id: &str) -> ClientRepresentation {
    ClientRepresentation { id: Some(id.into()), client_id: Some(client_id.into()), ..Default::default() }
}

fn idp(id: &str, alias: &str) -> IdentityProviderRepresentation {
    IdentityProviderRepresentation {
        internal_id: Some(id.into()),
        alias: Some(alias.into()),
        provider_id: Some("oidc".into()),
        ..Default::default()
    }
}

fn mapper(id: &str, name: &str) -> IdentityProviderMapperRepresentation {
    IdentityProviderMapperRepresentation {
        id: Some(id.into()),
        name: Some(name.into()),
        identity_provider_alias: Some("corp".into()),
        identity_provider_mapper: Some("hardcoded-attribute-idp-mapper".into()),
        ..Default::default()
    }
}

fn role(id: &str, name: &str) -> RoleRepresentation {
    RoleRepresentation { id: Some(id.into()), name: Some(name.into()), ..Default::default() }
}

fn link(subject: &str) -> FederatedIdentityRepresentation {
    FederatedIdentityRepresentation {
        identity_provider: Some("corp".into()),
        user_id: Some(subject.into()),
        user_name: None,
        ..Default::default()
    }
}

fn key(kid: &str) -> SigningKey {
    SigningKey {
        kid: kid.into(),
        alg: "RS256".into(),
        private_pem: Secret::new("not a real key".to_owned()),
        public_jwk: serde_json::json!({"kid": kid}),
        created_at: 1,
        active: true,
    }
}

/// A realm with one of everything: client `app`, provider `corp` with mapper
/// `m`, role `admin`, user `alice` linked to `corp` as `sub-alice`.
async fn seeded(store: &DbStore) {
    let mut b = bundle(realm("realm-1", REALM));
    b.clients = vec![client("client-1", "app")];
    b.identity_providers = vec![idp("idp-1", "corp")];
    b.mappers = vec![mapper("mapper-1", "m")];
    b.roles = vec![role("role-1", "admin")];
    b.users = vec![UserImport {
        user: user("user-1", "alice"),
        realm_roles: vec!["admin".into()],
        links: vec![link("sub-alice")],
        client_roles: vec![],
    }];
    b.keys = vec![key("kid-1")];
    store.create_realm(b).await.unwrap();
}

fn unique(r: Result<impl std::fmt::Debug, StoreError>) -> UniqueKey {
    match r {
        Err(e) => e.unique_key().unwrap_or_else(|| panic!("not a unique-key conflict: {e:?}")),
        Ok(v) => panic!("the write succeeded: {v:?}"),
    }
}

#[tokio::test]
async fn realm_client_provider_mapper_and_role_conflicts_name_their_key() {
    on_both("realm_client_provider_mapper_and_role_conflicts_name_their_key", |store| async move {
        seeded(&store).await;
        assert_eq!(unique(store.create_realm(bundle(realm("realm-2", REALM))).await), UniqueKey::RealmName);
        assert_eq!(unique(store.create_realm(bundle(realm("realm-1", "other"))).await), UniqueKey::Id(Entity::Realm));
        assert_eq!(unique(store.create_client(REALM, &client("client-2", "app")).await), UniqueKey::ClientId);
        assert_eq!(
            unique(store.create_client(REALM, &client("client-1", "app2")).await),
            UniqueKey::Id(Entity::Client)
        );
        assert_eq!(unique(store.create_idp(REALM, &idp("idp-2", "corp")).await), UniqueKey::IdpAlias);
        assert_eq!(unique(store.create_mapper(REALM, &mapper("mapper-2", "m")).await), UniqueKey::MapperName);
        assert_eq!(unique(store.create_role(REALM, &role("role-2", "admin")).await), UniqueKey::RoleName);

        // A realm whose bundle repeats a key id is refused whole.
        let mut b = bundle(realm("realm-3", "beta"));
        b.keys = vec![key("kid-9"), key("kid-9")];
        assert_eq!(unique(store.create_realm(b).await), UniqueKey::Id(Entity::SigningKey));
        assert!(store.get_realm("beta").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn a_taken_username_is_told_apart_from_an_id_collision() {
    on_both("a_taken_username_is_told_apart_from_an_id_collision", |store| async move {
        seeded(&store).await;
        let taken = store.create_user(REALM, &user("user-2", "alice")).await.unwrap_err();
        assert_eq!(taken.unique_key(), Some(UniqueKey::Username));
        // What an admin reads is about the username, not the database.
        assert_eq!(BrokerError::from(taken).to_string(), "a user with this username already exists");
        assert_eq!(unique(store.create_user(REALM, &user("user-1", "bob")).await), UniqueKey::Id(Entity::User));
        store.create_user(REALM, &user("user-2", "bob")).await.unwrap();
        assert_eq!(
            unique(store.update_user(REALM, &user("user-2", "alice")).await),
            UniqueKey::Username,
            "renaming onto a taken username"
        );
    })
    .await;
}

#[tokio::test]
async fn links_conflict_on_the_upstream_account_or_the_user_and_provider() {
    on_both("links_conflict_on_the_upstream_account_or_the_user_and_provider", |store| async move {
        seeded(&store).await;
        store.create_user(REALM, &user("user-2", "bob")).await.unwrap();
        assert_eq!(
            unique(store.create_link(REALM, "user-2", &link("sub-alice"), None).await),
            UniqueKey::FederatedLink
        );
        assert_eq!(unique(store.create_link(REALM, "user-1", &link("sub-other"), None).await), UniqueKey::UserLink);
    })
    .await;
}

#[tokio::test]
async fn a_sign_in_user_conflicts_on_its_username_or_its_link_and_leaves_nothing() {
    on_both("a_sign_in_user_conflicts_on_its_username_or_its_link_and_leaves_nothing", |store| async move {
        seeded(&store).await;
        let before = store.row_counts().await.unwrap();
        // Another account holds the username: not to be read as "already linked".
        assert_eq!(
            unique(store.create_linked_user(REALM, &user("user-3", "alice"), &link("sub-new"), None).await),
            UniqueKey::Username
        );
        // The same person signing in twice at once: their link now exists.
        assert_eq!(
            unique(store.create_linked_user(REALM, &user("user-3", "carol"), &link("sub-alice"), None).await),
            UniqueKey::FederatedLink
        );
        assert_eq!(store.row_counts().await.unwrap(), before);
    })
    .await;
}

#[tokio::test]
async fn a_reference_to_a_missing_user_is_a_foreign_key_conflict() {
    on_both("a_reference_to_a_missing_user_is_a_foreign_key_conflict", |store| async move {
        seeded(&store).await;
        let e = store.create_link(REALM, "no-such-user", &link("sub-ghost"), None).await.unwrap_err();
        assert!(e.is_foreign_key(), "{e:?}");
        assert_eq!(e.unique_key(), None);
        let e = store.grant_roles(REALM, "no-such-user", &["admin".into()]).await.unwrap_err();
        assert!(e.is_foreign_key(), "{e:?}");
    })
    .await;
}
