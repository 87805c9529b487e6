//! The session-store contract, run against every backend: embedded on
//! SQLite, embedded on PostgreSQL, and Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use federa_broker::SessionStore;
use federa_tests::{redis_sessions, TestDb};

const LONG: Duration = Duration::from_secs(600);

async fn contract(store: Arc<dyn SessionStore>) {
    store.ping().await.unwrap();

    // put / get / overwrite / delete.
    assert_eq!(store.get("flow:a").await.unwrap(), None);
    store.put("flow:a", "one", LONG).await.unwrap();
    assert_eq!(store.get("flow:a").await.unwrap().as_deref(), Some("one"));
    store.put("flow:a", "two", LONG).await.unwrap();
    assert_eq!(store.get("flow:a").await.unwrap().as_deref(), Some("two"));
    store.delete("flow:a").await.unwrap();
    assert_eq!(store.get("flow:a").await.unwrap(), None);
    store.delete("flow:never-set").await.unwrap();

    // take: the value comes out exactly once.
    store.put("code:x", "tokens", LONG).await.unwrap();
    assert_eq!(store.take("code:x").await.unwrap().as_deref(), Some("tokens"));
    assert_eq!(store.take("code:x").await.unwrap(), None);
    assert_eq!(store.get("code:x").await.unwrap(), None);

    // take under contention: of many concurrent takers, exactly one wins.
    store.put("code:race", "v", LONG).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move { s.take("code:race").await.unwrap() }));
    }
    let mut winners = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "a single-use value was handed out {winners} times");

    // put_if_absent: a replay cache.
    assert!(store.put_if_absent("jti:1", "seen", LONG).await.unwrap());
    assert!(!store.put_if_absent("jti:1", "again", LONG).await.unwrap());
    assert_eq!(store.get("jti:1").await.unwrap().as_deref(), Some("seen"));

    // Keys are independent.
    store.put("k:1", "a", LONG).await.unwrap();
    store.put("k:2", "b", LONG).await.unwrap();
    assert_eq!(store.get("k:1").await.unwrap().as_deref(), Some("a"));
    assert_eq!(store.get("k:2").await.unwrap().as_deref(), Some("b"));

    // Expiry is enforced by the store: a short-lived entry is there, then
    // gone for get, take and put_if_absent alike, without any caller check.
    let ttl = Duration::from_millis(150);
    store.put("short:get", "v", ttl).await.unwrap();
    store.put("short:take", "v", ttl).await.unwrap();
    store.put("short:nx", "old", ttl).await.unwrap();
    assert_eq!(store.get("short:get").await.unwrap().as_deref(), Some("v"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.get("short:get").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "an expired entry is still returned");
        tokio::task::yield_now().await;
    }
    for key in ["short:take", "short:nx"] {
        while store.get(key).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "an expired entry is still returned");
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(store.take("short:take").await.unwrap(), None);
    assert!(store.put_if_absent("short:nx", "new", LONG).await.unwrap(), "an expired entry blocks put_if_absent");
    assert_eq!(store.get("short:nx").await.unwrap().as_deref(), Some("new"));

    // replace: a live value changes, its expiry does not; nothing revives.
    assert!(!store.replace("gone:1", "v").await.unwrap());
    assert_eq!(store.get("gone:1").await.unwrap(), None);
    store.put("sso:r:touch", "old", LONG).await.unwrap();
    assert!(store.replace("sso:r:touch", "new").await.unwrap());
    assert_eq!(store.get("sso:r:touch").await.unwrap().as_deref(), Some("new"));
    store.put("sso:r:short", "old", Duration::from_millis(150)).await.unwrap();
    assert!(store.replace("sso:r:short", "new").await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.get("sso:r:short").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "replace lengthened an entry's life");
        tokio::task::yield_now().await;
    }
    assert!(!store.replace("sso:r:short", "again").await.unwrap(), "an expired entry is revived");
    assert_eq!(store.get("sso:r:short").await.unwrap(), None);

    index_contract(store).await;
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Secondary indexes: sets of members with expiry, added to and removed
/// from one member at a time.
async fn index_contract(store: Arc<dyn SessionStore>) {
    assert!(store.index_members("sso-user:r:u1").await.unwrap().is_empty());
    store.index_add("sso-user:r:u1", "sid-a", LONG).await.unwrap();
    store.index_add("sso-user:r:u1", "sid-b", LONG).await.unwrap();
    store.index_add("sso-user:r:u1", "sid-a", LONG).await.unwrap();
    store.index_add("sso-user:r:u2", "sid-c", LONG).await.unwrap();
    assert_eq!(sorted(store.index_members("sso-user:r:u1").await.unwrap()), ["sid-a", "sid-b"]);
    assert_eq!(store.index_members("sso-user:r:u2").await.unwrap(), ["sid-c"]);
    // An index and an entry of the same name do not meet.
    assert_eq!(store.get("sso-user:r:u1").await.unwrap(), None);

    store.index_remove("sso-user:r:u1", "sid-a").await.unwrap();
    store.index_remove("sso-user:r:u1", "never").await.unwrap();
    assert_eq!(store.index_members("sso-user:r:u1").await.unwrap(), ["sid-b"]);
    store.index_delete("sso-user:r:u1").await.unwrap();
    assert!(store.index_members("sso-user:r:u1").await.unwrap().is_empty());
    assert_eq!(store.index_members("sso-user:r:u2").await.unwrap(), ["sid-c"]);

    // Concurrent adds are all kept (no read-modify-write race).
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move { s.index_add("sso-clients:r:s", &format!("c{i}"), LONG).await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.index_members("sso-clients:r:s").await.unwrap().len(), 8);

    // Expiry: a short-lived index is gone without any caller check; a later
    // add with a longer life keeps the member.
    store.index_add("sso-up-sid:r:idp:short", "sid-x", Duration::from_millis(150)).await.unwrap();
    store.index_add("sso-up-sid:r:idp:long", "sid-y", Duration::from_millis(150)).await.unwrap();
    store.index_add("sso-up-sid:r:idp:long", "sid-y", LONG).await.unwrap();
    assert_eq!(store.index_members("sso-up-sid:r:idp:short").await.unwrap(), ["sid-x"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !store.index_members("sso-up-sid:r:idp:short").await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "an expired index member is still returned");
        tokio::task::yield_now().await;
    }
    assert_eq!(store.index_members("sso-up-sid:r:idp:long").await.unwrap(), ["sid-y"]);

    // put_many writes values and index members together.
    use federa_broker::store::{Entry, EntryKind};
    let entry = |key: &str, value: &str, kind| Entry { key: key.into(), value: value.into(), ttl: LONG, kind };
    store
        .put_many(vec![
            entry("sso:r:many", "session", EntryKind::Value),
            entry("sso-user:r:many", "many", EntryKind::IndexMember),
            entry("sso-user:r:many", "other", EntryKind::IndexMember),
        ])
        .await
        .unwrap();
    assert_eq!(store.get("sso:r:many").await.unwrap().as_deref(), Some("session"));
    assert_eq!(sorted(store.index_members("sso-user:r:many").await.unwrap()), ["many", "other"]);
    assert_eq!(store.get("sso-user:r:many").await.unwrap(), None, "a member is not a value");

    // get_many: live values in the order asked, None for the others.
    let keys = ["sso:r:many".to_owned(), "nothing:here".to_owned(), "sso-user:r:many".to_owned()];
    assert_eq!(store.get_many(&keys).await.unwrap(), [Some("session".to_owned()), None, None]);
    assert!(store.get_many(&[]).await.unwrap().is_empty());

    // renew: only a live value is replaced (a revoked family stays revoked),
    // and it then lives the new ttl.
    assert!(!store.renew("rtf:r:gone", "back", LONG).await.unwrap());
    assert_eq!(store.get("rtf:r:gone").await.unwrap(), None, "renew never creates");
    store.put("rtf:r:short", "one", LONG).await.unwrap();
    assert!(store.renew("rtf:r:short", "two", Duration::from_millis(200)).await.unwrap());
    assert_eq!(store.get("rtf:r:short").await.unwrap().as_deref(), Some("two"));
    // Replace and Renew entries behave alike in a batch.
    store
        .put_many(vec![
            entry("sso:r:many", "touched", EntryKind::Replace),
            entry("sso:r:absent", "revived", EntryKind::Replace),
            entry("rtf:r:absent", "revived", EntryKind::Renew),
        ])
        .await
        .unwrap();
    assert_eq!(store.get("sso:r:many").await.unwrap().as_deref(), Some("touched"));
    assert_eq!(store.get("sso:r:absent").await.unwrap(), None);
    assert_eq!(store.get("rtf:r:absent").await.unwrap(), None);
    // The renewed value lives the new ttl, not the old one.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.get("rtf:r:short").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "renew did not set the new ttl");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_on_sqlite() {
    let db = TestDb::sqlite();
    let store = db.store();
    contract(Arc::new(store.embedded_sessions())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_sessions_survive_a_restart() {
    let db = TestDb::sqlite();
    {
        let store = db.store();
        store.embedded_sessions().put("flow:restart", "state", LONG).await.unwrap();
    }
    let reopened = db.store();
    assert_eq!(reopened.embedded_sessions().get("flow:restart").await.unwrap().as_deref(), Some("state"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_purge_removes_only_expired() {
    let db = TestDb::sqlite();
    let sessions = db.store().embedded_sessions();
    sessions.put("keep", "v", LONG).await.unwrap();
    sessions.put("drop", "v", Duration::from_millis(1)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while sessions.get("drop").await.unwrap().is_some() {
        assert!(Instant::now() < deadline);
        tokio::task::yield_now().await;
    }
    assert_eq!(sessions.purge_expired().await.unwrap(), 1);
    assert_eq!(sessions.get("keep").await.unwrap().as_deref(), Some("v"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_on_postgres() {
    let Some(db) = TestDb::postgres("session_store::embedded_on_postgres") else { return };
    let store = db.store();
    contract(Arc::new(store.embedded_sessions())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis() {
    let Some(store) = redis_sessions("session_store::redis").await else { return };
    contract(Arc::new(store)).await;
}

/// What the test grants point at: `{"user": ..., "session": ...}`.
fn test_refs(_realm: &str, grant: &str) -> Option<federa_broker::store::GrantRefs> {
    let v: serde_json::Value = serde_json::from_str(grant).ok()?;
    Some(federa_broker::store::GrantRefs {
        session_key: v["session"].as_str()?.to_owned(),
        user_id: v["user"].as_str()?.to_owned(),
        client_index: ("sso-clients:r:s1".to_owned(), "app".to_owned()),
    })
}

/// Redeeming a code in one trip (embedded) or over the separate stores
/// (Redis): the grant comes out once, its use is recorded for the one
/// reuse, and the session and user are read with it.
async fn redemption(sessions: Arc<dyn SessionStore>, store: federa_storage::DbStore) {
    use federa_broker::store::{CodeRedeemer, Redemption};
    let admin = federa_broker::AdminService::new(Arc::new(store.clone()));
    admin
        .create_realm(
            serde_json::from_value(serde_json::json!({"realm": "r"})).unwrap(),
            federa_broker::RealmSource::Api,
        )
        .await
        .unwrap();
    let user = serde_json::from_value(serde_json::json!({"username": "ann"})).unwrap();
    let user_id = admin.create_user("r", user).await.unwrap();
    let redeemer: Arc<dyn CodeRedeemer> = sessions.redeemer().unwrap_or_else(|| {
        Arc::new(federa_broker::store::hot::Composed { store: Arc::new(store.clone()), sessions: sessions.clone() })
    });
    let grant = serde_json::json!({"user": user_id, "session": "sso:r:s1"}).to_string();
    let req = |code: &str| Redemption {
        realm: "r".into(),
        code_key: format!("code:r:{code}"),
        used_key: format!("used:r:{code}"),
        used_value: format!("jti-of-{code}"),
        used_ttl: LONG,
        refs: test_refs,
        index_ttl: LONG,
        issue: None,
    };
    sessions.put("sso:r:s1", "session", LONG).await.unwrap();
    sessions.put("code:r:c1", &grant, LONG).await.unwrap();

    let first = redeemer.redeem_code(req("c1")).await.unwrap();
    assert_eq!(first.grant.as_deref(), Some(grant.as_str()));
    assert_eq!(first.session.as_deref(), Some("session"));
    assert_eq!(first.user.and_then(|u| u.username).as_deref(), Some("ann"));
    assert_eq!(first.previous_use, None);
    assert_eq!(sessions.index_members("sso-clients:r:s1").await.unwrap(), ["app"], "the client is recorded");

    let second = redeemer.redeem_code(req("c1")).await.unwrap();
    assert_eq!((second.grant, second.previous_use.as_deref()), (None, Some("jti-of-c1")), "the reuse finds the use");
    let third = redeemer.redeem_code(req("c1")).await.unwrap();
    assert_eq!((third.grant, third.previous_use), (None, None), "the record of use is taken once");

    // An ended session and a deleted user read as absent.
    sessions.delete("sso:r:s1").await.unwrap();
    admin.delete_user("r", &user_id).await.unwrap();
    sessions.put("code:r:c2", &grant, LONG).await.unwrap();
    let gone = redeemer.redeem_code(req("c2")).await.unwrap();
    assert!(gone.grant.is_some() && gone.session.is_none() && gone.user.is_none());

    // Concurrent redemptions of one code: exactly one gets the grant.
    sessions.put("code:r:c3", &grant, LONG).await.unwrap();
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let (redeemer, req) = (redeemer.clone(), req("c3"));
            tokio::spawn(async move { redeemer.redeem_code(req).await.unwrap().grant.is_some() })
        })
        .collect();
    let mut winners = 0;
    for r in racers {
        winners += usize::from(r.await.unwrap());
    }
    assert_eq!(winners, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redemption_embedded_on_sqlite() {
    let db = TestDb::sqlite();
    let store = db.store();
    assert!(store.embedded_sessions().redeemer().is_some(), "the embedded store redeems in one trip");
    redemption(Arc::new(store.embedded_sessions()), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redemption_embedded_on_postgres() {
    let Some(db) = TestDb::postgres("session_store::redemption_embedded_on_postgres") else { return };
    let store = db.store();
    redemption(Arc::new(store.embedded_sessions()), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redemption_with_redis() {
    let Some(sessions) = redis_sessions("session_store::redemption_with_redis").await else { return };
    assert!(sessions.redeemer().is_none(), "Redis composes the stores");
    let db = TestDb::sqlite();
    redemption(Arc::new(sessions), db.store()).await;
}

/// The session entries a test sign-in writes for a user.
fn entries_for(tag: &'static str) -> federa_broker::store::EntriesFor {
    Arc::new(move |user_id: &str| {
        use federa_broker::store::{Entry, EntryKind};
        vec![
            Entry { key: format!("sso:{tag}"), value: user_id.to_owned(), ttl: LONG, kind: EntryKind::Value },
            Entry {
                key: format!("sso-user:{tag}"),
                value: user_id.to_owned(),
                ttl: LONG,
                kind: EntryKind::IndexMember,
            },
        ]
    })
}

/// The callback's writes (one trip on the embedded store, composed over
/// Redis): a first sign-in creates the user with their link, a later one
/// finds them through it, FORCE rewrites the profile, a taken username is a
/// conflict naming the username, and refusals write nothing.
async fn sign_in_writes(sessions: Arc<dyn SessionStore>, store: federa_storage::DbStore) {
    use federa_broker::store::{Profile, SignIn, SignInWriter, SignedIn, UniqueKey};
    let admin = federa_broker::AdminService::new(Arc::new(store.clone()));
    admin
        .create_realm(
            serde_json::from_value(serde_json::json!({"realm": "r"})).unwrap(),
            federa_broker::RealmSource::Api,
        )
        .await
        .unwrap();
    let writer: Arc<dyn SignInWriter> = sessions.sign_in_writer().unwrap_or_else(|| {
        Arc::new(federa_broker::store::hot::Composed { store: Arc::new(store.clone()), sessions: sessions.clone() })
    });
    let profile = |email: &str| Profile { email: Some(email.into()), email_verified: true, ..Profile::default() };
    let new_user = |name: &str, email: &str| {
        let mut u: federa_broker::repr::UserRepresentation =
            serde_json::from_value(serde_json::json!({"username": name, "enabled": true})).unwrap();
        federa_broker::validate::user(&mut u, "", 0).unwrap();
        profile(email).apply(&mut u);
        Some(u)
    };
    let sign_in = |subject: &str, name: &str, email: &str, force: bool, tag: &'static str| SignIn {
        realm: "r".into(),
        alias: "up".into(),
        subject: subject.into(),
        profile: profile(email),
        force,
        new_user: new_user(name, email),
        link_username: None,
        link: serde_json::from_value(serde_json::json!({"identityProvider": "up", "userId": subject})).unwrap(),
        token: None,
        grant_on_create: vec![],
        entries: entries_for(tag),
        mappers: None,
    };

    let SignedIn::User { user_id, created: true, email_unverified: false, .. } =
        writer.sign_in(sign_in("s-ann", "ann", "ann@x.test", false, "one")).await.unwrap()
    else {
        panic!("a first sign-in creates the user")
    };
    assert_eq!(sessions.get("sso:one").await.unwrap().as_deref(), Some(user_id.as_str()), "entries written");
    assert_eq!(sessions.index_members("sso-user:one").await.unwrap(), [user_id.as_str()], "index members written");

    // A later sign-in finds the user through the link; FORCE rewrites the profile.
    let again = writer.sign_in(sign_in("s-ann", "ignored", "ann2@x.test", true, "two")).await.unwrap();
    assert_eq!(
        again,
        SignedIn::User { user_id: user_id.clone(), created: false, email_unverified: false, skipped_roles: vec![] }
    );
    let ann = admin.get_user("r", &user_id).await.unwrap();
    assert_eq!((ann.username.as_deref(), ann.email.as_deref()), (Some("ann"), Some("ann2@x.test")));

    // Someone else's address is stored unverified.
    let bob = writer.sign_in(sign_in("s-bob", "bob", "ann2@x.test", false, "three")).await.unwrap();
    assert!(matches!(bob, SignedIn::User { created: true, email_unverified: true, .. }), "{bob:?}");

    // storeToken: the first sign-in stores the upstream tokens with the new
    // link and grants the roles asked for at creation; a later one replaces them.
    {
        use federa_broker::UserStore as _;
        let token = |store: &federa_storage::DbStore, id: String| {
            let store = store.clone();
            async move { store.link_token("r", &id, "up").await.unwrap().map(|t| t.expose().to_owned()) }
        };
        let mut first = sign_in("s-tok", "tok", "tok@x.test", false, "tok1");
        first.token = Some(federa_protocol::Secret::new("t1"));
        first.grant_on_create = vec![("broker".into(), "read-token".into())];
        let SignedIn::User { user_id: tok, created: true, .. } = writer.sign_in(first).await.unwrap() else {
            panic!("created")
        };
        assert_eq!(token(&store, tok.clone()).await.as_deref(), Some("t1"));
        assert_eq!(store.user_client_roles("r", &tok, "broker").await.unwrap(), ["read-token"]);
        let mut later = sign_in("s-tok", "tok", "tok@x.test", false, "tok2");
        later.token = Some(federa_protocol::Secret::new("t2"));
        later.grant_on_create = vec![("broker".into(), "other".into())];
        writer.sign_in(later).await.unwrap();
        assert_eq!(token(&store, tok.clone()).await.as_deref(), Some("t2"), "replaced at the later sign-in");
        assert_eq!(
            store.user_client_roles("r", &tok, "broker").await.unwrap(),
            ["read-token"],
            "granted at creation only"
        );

        // federa-known-users: an existing user is linked by username, with
        // the tokens; nobody is created; a user already linked to the
        // provider, or no such user, is not known.
        let carol: federa_broker::repr::UserRepresentation =
            serde_json::from_value(serde_json::json!({"username": "carol"})).unwrap();
        let carol = admin.create_user("r", carol).await.unwrap();
        let before = store.row_counts().await.unwrap();
        let known = |subject: &str, username: &str, tag: &'static str| {
            let mut s = sign_in(subject, "unused", "k@x.test", false, tag);
            s.new_user = None;
            s.link_username = Some(username.into());
            s.token = Some(federa_protocol::Secret::new("tk"));
            s
        };
        assert_eq!(writer.sign_in(known("s-nobody", "nobody", "k0")).await.unwrap(), SignedIn::NotKnown);
        assert_eq!(writer.sign_in(known("s-bob2", "bob", "k1")).await.unwrap(), SignedIn::NotKnown, "bob has a link");
        assert_eq!(store.row_counts().await.unwrap(), before);
        assert_eq!(sessions.get("sso:k0").await.unwrap(), None);
        let linked = writer.sign_in(known("s-carol", "Carol", "k2")).await.unwrap();
        assert_eq!(
            linked,
            SignedIn::User { user_id: carol.clone(), created: false, email_unverified: false, skipped_roles: vec![] }
        );
        assert_eq!(token(&store, carol.clone()).await.as_deref(), Some("tk"));
        let by_link = store.find_user_by_link("r", "up", "s-carol").await.unwrap().unwrap();
        assert_eq!(by_link.id.as_deref(), Some(carol.as_str()));
    }

    // A taken username: a conflict naming it, and nothing written.
    let before = store.row_counts().await.unwrap();
    let err = writer.sign_in(sign_in("s-other", "ann", "o@x.test", false, "four")).await.unwrap_err();
    assert_eq!(err.unique_key(), Some(UniqueKey::Username), "{err}");
    assert_eq!(store.row_counts().await.unwrap(), before);
    assert_eq!(sessions.get("sso:four").await.unwrap(), None);

    // First sign-ins refused by policy, and disabled users: nothing written.
    let mut refused = sign_in("s-new", "new", "n@x.test", false, "five");
    refused.new_user = None;
    assert_eq!(writer.sign_in(refused).await.unwrap(), SignedIn::FirstLoginRefused);
    assert_eq!(store.row_counts().await.unwrap(), before);
    let mut disabled = admin.get_user("r", &user_id).await.unwrap();
    disabled.enabled = Some(false);
    admin.update_user("r", &user_id, disabled).await.unwrap();
    let before = store.row_counts().await.unwrap();
    assert_eq!(writer.sign_in(sign_in("s-ann", "ann", "a@x.test", true, "six")).await.unwrap(), SignedIn::Disabled);
    assert_eq!(store.row_counts().await.unwrap(), before);
    assert_eq!(sessions.get("sso:five").await.unwrap(), None);
    assert_eq!(sessions.get("sso:six").await.unwrap(), None);
    for tag in ["four", "five", "six"] {
        assert!(sessions.index_members(&format!("sso-user:{tag}")).await.unwrap().is_empty(), "{tag}: no index member");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_embedded_on_sqlite() {
    let db = TestDb::sqlite();
    let store = db.store();
    assert!(store.embedded_sessions().sign_in_writer().is_some(), "the embedded store signs in in one trip");
    sign_in_writes(Arc::new(store.embedded_sessions()), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_embedded_on_postgres() {
    let Some(db) = TestDb::postgres("session_store::sign_in_embedded_on_postgres") else { return };
    let store = db.store();
    sign_in_writes(Arc::new(store.embedded_sessions()), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_with_redis() {
    let Some(sessions) = redis_sessions("session_store::sign_in_with_redis").await else { return };
    assert!(sessions.sign_in_writer().is_none(), "Redis composes the stores");
    let db = TestDb::sqlite();
    sign_in_writes(Arc::new(sessions), db.store()).await;
}

/// The mappers' changes in the sign-in write: computed on the user as
/// stored (their roles and attributes), roles the realm lacks skipped, a
/// later rename to a username another user holds not taken (the rest
/// applies), and a first sign-in refused on such a name writing nothing.
async fn sign_in_with_mappers(sessions: Arc<dyn SessionStore>, store: federa_storage::DbStore) {
    use federa_broker::store::{MapUser, SignIn, SignInWriter, SignedIn, UniqueKey};
    use federa_mappers::{Change, UserState};
    use std::sync::Mutex;
    let admin = federa_broker::AdminService::new(Arc::new(store.clone()));
    let realm = serde_json::json!({"realm": "m", "roles": {"realm": [{"name": "staff"}]},
        "users": [{"username": "taken", "enabled": true}]});
    admin.create_realm(serde_json::from_value(realm).unwrap(), federa_broker::RealmSource::Api).await.unwrap();
    let writer: Arc<dyn SignInWriter> = sessions.sign_in_writer().unwrap_or_else(|| {
        Arc::new(federa_broker::store::hot::Composed { store: Arc::new(store.clone()), sessions: sessions.clone() })
    });
    let seen: Arc<Mutex<Vec<UserState>>> = Arc::default();
    let mapping = |changes: Vec<Change>| -> MapUser {
        let seen = seen.clone();
        Arc::new(move |state: &UserState| {
            seen.lock().unwrap().push(state.clone());
            changes.clone()
        })
    };
    let sign_in = |changes: Vec<Change>, tag: &'static str| {
        let mut u: federa_broker::repr::UserRepresentation =
            serde_json::from_value(serde_json::json!({"username": "mia", "enabled": true})).unwrap();
        federa_broker::validate::user(&mut u, "", 0).unwrap();
        SignIn {
            realm: "m".into(),
            alias: "up".into(),
            subject: "s-mia".into(),
            profile: Default::default(),
            force: false,
            new_user: Some(u),
            link: serde_json::from_value(serde_json::json!({"identityProvider": "up", "userId": "s-mia"})).unwrap(),
            token: None,
            entries: entries_for(tag),
            mappers: Some(mapping(changes)),
            link_username: None,
            grant_on_create: vec![],
        }
    };
    let dept = Change::SetAttribute { name: "dept".into(), values: vec!["rd".into(), "ops".into()] };
    let first = vec![Change::GrantRole("staff".into()), Change::GrantRole("ghost".into()), dept];
    let SignedIn::User { user_id, created: true, skipped_roles, .. } =
        writer.sign_in(sign_in(first, "m1")).await.unwrap()
    else {
        panic!("a first sign-in creates the user")
    };
    assert_eq!(skipped_roles, ["ghost"], "a role the realm lacks is skipped and said");
    let role_names = |roles: Vec<federa_broker::repr::RoleRepresentation>| -> Vec<String> {
        roles.into_iter().filter_map(|r| r.name).collect()
    };
    assert_eq!(role_names(admin.user_roles("m", &user_id).await.unwrap()), ["staff"]);
    let mia = admin.get_user("m", &user_id).await.unwrap();
    assert_eq!(mia.attributes.unwrap()["dept"], ["rd", "ops"]);
    assert!(seen.lock().unwrap()[0].first_login);

    // A later sign-in: the mappers see the stored user; a username another
    // user holds is not taken (the sign-in and the other changes go on).
    let clash = vec![Change::GrantRole("ghost".into()), Change::SetUsername("taken".into())];
    let done = writer.sign_in(sign_in(clash, "m2")).await.unwrap();
    assert!(
        matches!(&done, SignedIn::User { created: false, skipped_roles, .. } if skipped_roles == &["ghost"]),
        "{done:?}"
    );
    let state = seen.lock().unwrap().last().cloned().unwrap();
    assert!(!state.first_login);
    assert_eq!(state.roles.into_iter().collect::<Vec<_>>(), ["staff"]);
    assert_eq!(state.attributes["dept"], ["rd", "ops"]);
    assert_eq!(admin.get_user("m", &user_id).await.unwrap().username.as_deref(), Some("mia"));

    // A first sign-in whose mapper names a taken username: the conflict
    // names the username (the "account exists" page), and nothing of it is
    // written: no user, link, role or session.
    let before = store.row_counts().await.unwrap();
    let mut refused = sign_in(vec![Change::SetUsername("taken".into()), Change::GrantRole("staff".into())], "m4");
    refused.subject = "s-nobody".into();
    let err = writer.sign_in(refused).await.unwrap_err();
    assert_eq!(err.unique_key(), Some(UniqueKey::Username), "{err}");
    assert_eq!(store.row_counts().await.unwrap(), before, "nothing of the refused sign-in was written");
    assert_eq!(sessions.get("sso:m4").await.unwrap(), None);

    let later = vec![Change::RevokeRole("staff".into()), Change::RemoveAttribute("dept".into())];
    let done = writer.sign_in(sign_in(later, "m3")).await.unwrap();
    assert!(matches!(done, SignedIn::User { created: false, .. }), "{done:?}");
    assert!(admin.user_roles("m", &user_id).await.unwrap().is_empty());
    assert_eq!(admin.get_user("m", &user_id).await.unwrap().attributes, None);
    assert_eq!(sessions.get("sso:m3").await.unwrap().as_deref(), Some(user_id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappers_embedded_on_sqlite() {
    let db = TestDb::sqlite();
    let store = db.store();
    sign_in_with_mappers(Arc::new(store.embedded_sessions()), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappers_embedded_on_postgres() {
    let Some(db) = TestDb::postgres("session_store::mappers_embedded_on_postgres") else { return };
    let store = db.store();
    sign_in_with_mappers(Arc::new(store.embedded_sessions()), store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappers_with_redis() {
    let Some(sessions) = redis_sessions("session_store::mappers_with_redis").await else { return };
    let db = TestDb::sqlite();
    sign_in_with_mappers(Arc::new(sessions), db.store()).await;
}
