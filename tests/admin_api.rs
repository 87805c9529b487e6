//! The admin API end to end, on SQLite and on PostgreSQL: the same scenario
//! over every resource, Keycloak realm exports imported and read back, refused
//! input leaving the database untouched, and no secret in clear at rest.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use federa_tests::{app, call, fixture, state, Backend, TestDb, ADMIN_TOKEN};
use serde_json::{json, Value};

const MASK: &str = "**********";

async fn crud_scenario(db: TestDb) {
    let store = db.store();
    let st = state(&store);
    let app = app!(st);

    // Realm.
    let (s, loc, _) = call!(app, POST, "/admin/realms", json!({"realm": "acme", "displayName": "ACME"}));
    assert_eq!(s, 201);
    assert_eq!(loc.as_deref(), Some("http://federa.test/admin/realms/acme"));
    let (s, _, realm) = call!(app, GET, "/admin/realms/acme");
    assert_eq!((s, realm["realm"].clone(), realm["displayName"].clone()), (200, json!("acme"), json!("ACME")));
    assert_eq!(realm["defaultSignatureAlgorithm"], "RS256");
    let (s, _, _) = call!(app, PUT, "/admin/realms/acme", json!({"realm": "acme", "displayName": "ACME Corp"}));
    assert_eq!(s, 204);
    let (_, _, realm) = call!(app, GET, "/admin/realms/acme");
    assert_eq!(realm["displayName"], "ACME Corp");
    let (s, _, list) = call!(app, GET, "/admin/realms");
    assert_eq!(s, 200);
    assert!(list.as_array().unwrap().iter().any(|r| r["realm"] == "acme"));
    assert_eq!(
        federa_broker::KeyStore::signing_keys(&store, "acme").await.unwrap().len(),
        1,
        "a new realm gets a signing key"
    );

    // Client.
    let client = json!({"clientId": "portal", "redirectUris": ["https://portal.test/cb"], "secret": "s3cret-portal"});
    let (s, loc, _) = call!(app, POST, "/admin/realms/acme/clients", client);
    assert_eq!(s, 201);
    let loc = loc.unwrap();
    let id = loc.rsplit('/').next().unwrap().to_owned();
    assert_eq!(loc, format!("http://federa.test/admin/realms/acme/clients/{id}"));
    let path = format!("/admin/realms/acme/clients/{id}");
    let (s, _, c) = call!(app, GET, path);
    assert_eq!((s, c["clientId"].clone(), c["secret"].clone()), (200, json!("portal"), json!("s3cret-portal")));
    assert_eq!(c["redirectUris"], json!(["https://portal.test/cb"]));
    let (_, _, list) = call!(app, GET, "/admin/realms/acme/clients");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["secret"], MASK, "lists mask client secrets");
    let (_, _, filtered) = call!(app, GET, "/admin/realms/acme/clients?clientId=nope");
    assert_eq!(filtered, json!([]));
    let (_, _, filtered) = call!(app, GET, "/admin/realms/acme/clients?clientId=portal");
    assert_eq!(filtered[0]["id"], id.as_str());
    let mut updated = c.clone();
    updated["name"] = json!("Portal");
    updated["secret"] = json!(MASK);
    let (s, _, _) = call!(app, PUT, path, updated);
    assert_eq!(s, 204);
    let (_, _, c) = call!(app, GET, path);
    assert_eq!((c["name"].clone(), c["secret"].clone()), (json!("Portal"), json!("s3cret-portal")));
    let (s, _, sec) = call!(app, GET, format!("{path}/client-secret"));
    assert_eq!((s, sec), (200, json!({"type": "secret", "value": "s3cret-portal"})));
    let (s, _, new_sec) = call!(app, POST, format!("{path}/client-secret"));
    assert_eq!(s, 200);
    assert_ne!(new_sec["value"], "s3cret-portal");
    let (_, _, c) = call!(app, GET, path);
    assert_eq!(c["secret"], new_sec["value"]);

    // Identity provider.
    let idp = json!({
        "alias": "corp", "displayName": "Corp", "providerId": "oidc",
        "config": {"clientId": "federa", "clientSecret": "idp-s3cret", "authorizationUrl": "https://idp.test/auth",
                   "tokenUrl": "https://idp.test/token", "syncMode": "IMPORT"}
    });
    let (s, loc, _) = call!(app, POST, "/admin/realms/acme/identity-provider/instances", idp);
    assert_eq!(s, 201);
    assert_eq!(loc.as_deref(), Some("http://federa.test/admin/realms/acme/identity-provider/instances/corp"));
    let ipath = "/admin/realms/acme/identity-provider/instances/corp";
    let (s, _, got) = call!(app, GET, ipath);
    assert_eq!(s, 200);
    assert_eq!(got["config"]["clientSecret"], MASK);
    assert_eq!(got["config"]["tokenUrl"], "https://idp.test/token");
    let mut changed = got.clone();
    changed["displayName"] = json!("Corporate");
    changed["config"]["syncMode"] = json!("FORCE");
    let (s, _, _) = call!(app, PUT, ipath, changed);
    assert_eq!(s, 204);
    let (_, _, got) = call!(app, GET, ipath);
    assert_eq!((got["displayName"].clone(), got["config"]["syncMode"].clone()), (json!("Corporate"), json!("FORCE")));
    let stored = federa_broker::UpstreamStore::get_idp(&store, "acme", "corp").await.unwrap().unwrap();
    assert_eq!(stored.config["clientSecret"], "idp-s3cret", "a masked secret in an update keeps the stored one");
    let (_, _, list) = call!(app, GET, "/admin/realms/acme/identity-provider/instances");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["config"]["clientSecret"], MASK);

    // Mapper.
    let mapper = json!({"name": "dept", "identityProviderMapper": "oidc-user-attribute-idp-mapper",
                        "config": {"claim": "department", "user.attribute": "department", "syncMode": "INHERIT"}});
    let (s, loc, _) = call!(app, POST, format!("{ipath}/mappers"), mapper);
    assert_eq!(s, 201);
    let mid = loc.unwrap().rsplit('/').next().unwrap().to_owned();
    let mpath = format!("{ipath}/mappers/{mid}");
    let (s, _, m) = call!(app, GET, mpath);
    assert_eq!((s, m["name"].clone(), m["identityProviderAlias"].clone()), (200, json!("dept"), json!("corp")));
    let mut m2 = m.clone();
    m2["config"]["claim"] = json!("dept");
    let (s, _, _) = call!(app, PUT, mpath, m2);
    assert_eq!(s, 204);
    let (_, _, list) = call!(app, GET, format!("{ipath}/mappers"));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["config"]["claim"], "dept");

    // Roles.
    let (s, loc, _) =
        call!(app, POST, "/admin/realms/acme/roles", json!({"name": "staff", "description": "All staff"}));
    assert_eq!(s, 201);
    assert_eq!(loc.as_deref(), Some("http://federa.test/admin/realms/acme/roles/staff"));
    let (_, _, roles) = call!(app, GET, "/admin/realms/acme/roles");
    assert_eq!(roles.as_array().unwrap().len(), 1);
    assert_eq!(roles[0]["description"], "All staff");

    // User.
    let user = json!({"username": "Alice", "email": "alice@acme.test", "firstName": "Alice",
                      "attributes": {"dept": ["eng"]}});
    let (s, loc, _) = call!(app, POST, "/admin/realms/acme/users", user);
    assert_eq!(s, 201);
    let uid = loc.unwrap().rsplit('/').next().unwrap().to_owned();
    let upath = format!("/admin/realms/acme/users/{uid}");
    let (s, _, u) = call!(app, GET, upath);
    assert_eq!(s, 200);
    assert_eq!((u["username"].clone(), u["enabled"].clone()), (json!("alice"), json!(true)));
    assert_eq!(u["attributes"], json!({"dept": ["eng"]}));
    let (s, _, _) = call!(app, PUT, upath, json!({"lastName": "Anders"}));
    assert_eq!(s, 204);
    let (_, _, u) = call!(app, GET, upath);
    assert_eq!((u["firstName"].clone(), u["lastName"].clone()), (json!("Alice"), json!("Anders")));
    let (_, _, found) = call!(app, GET, "/admin/realms/acme/users?username=ALI");
    assert_eq!(found.as_array().unwrap().len(), 1);
    let (_, _, found) = call!(app, GET, "/admin/realms/acme/users?email=nobody");
    assert_eq!(found, json!([]));
    let (_, _, found) = call!(app, GET, "/admin/realms/acme/users?username=ali&exact=true");
    assert_eq!(found, json!([]), "exact matches whole usernames only");
    let (_, _, found) = call!(app, GET, "/admin/realms/acme/users?username=Alice&exact=true");
    assert_eq!(found.as_array().unwrap().len(), 1);
    let (_, _, found) = call!(app, GET, "/admin/realms/acme/users?email=ALICE@acme.test&exact=true");
    assert_eq!(found.as_array().unwrap().len(), 1);

    // Role mappings.
    let (s, _, _) = call!(app, POST, format!("{upath}/role-mappings/realm"), json!([{"name": "staff"}]));
    assert_eq!(s, 204);
    let (_, _, granted) = call!(app, GET, format!("{upath}/role-mappings/realm"));
    assert_eq!(granted.as_array().unwrap().iter().map(|r| r["name"].clone()).collect::<Vec<_>>(), vec![json!("staff")]);
    let (s, _, _) = call!(app, DELETE, format!("{upath}/role-mappings/realm"), json!([{"name": "staff"}]));
    assert_eq!(s, 204);
    let (_, _, granted) = call!(app, GET, format!("{upath}/role-mappings/realm"));
    assert_eq!(granted, json!([]));

    // Federated identity link.
    let link = json!({"identityProvider": "corp", "userId": "upstream-sub-1", "userName": "alice.a"});
    let (s, _, _) = call!(app, POST, format!("{upath}/federated-identity/corp"), link);
    assert_eq!(s, 204);
    let (_, _, links) = call!(app, GET, format!("{upath}/federated-identity"));
    assert_eq!(links, json!([{"identityProvider": "corp", "userId": "upstream-sub-1", "userName": "alice.a"}]));
    let by_link = federa_broker::UserStore::find_user_by_link(&store, "acme", "corp", "upstream-sub-1").await.unwrap();
    assert_eq!(by_link.and_then(|u| u.id), Some(uid.clone()));
    let (s, _, _) = call!(app, DELETE, format!("{upath}/federated-identity/corp"));
    assert_eq!(s, 204);
    let (_, _, links) = call!(app, GET, format!("{upath}/federated-identity"));
    assert_eq!(links, json!([]));
    let (s, _, sessions) = call!(app, GET, format!("{upath}/sessions"));
    assert_eq!((s, sessions), (200, json!([])));

    // Deletes, each checked by a read that now misses.
    let (s, _, _) = call!(app, DELETE, mpath);
    assert_eq!(s, 204);
    assert_eq!(call!(app, GET, mpath).0, 404);
    let (s, _, _) = call!(app, DELETE, upath);
    assert_eq!(s, 204);
    assert_eq!(call!(app, GET, upath).0, 404);
    let (s, _, _) = call!(app, DELETE, ipath);
    assert_eq!(s, 204);
    assert_eq!(call!(app, GET, ipath).0, 404);
    let (s, _, _) = call!(app, DELETE, path);
    assert_eq!(s, 204);
    assert_eq!(call!(app, GET, path).0, 404);
    let (s, _, _) = call!(app, DELETE, "/admin/realms/acme");
    assert_eq!(s, 204);
    assert_eq!(call!(app, GET, "/admin/realms/acme").0, 404);
    let counts = store.row_counts().await.unwrap();
    for (table, n) in counts {
        if table != "audit_events" {
            assert_eq!(n, 0, "{table} still has rows after the realm was deleted");
        }
    }
}

#[actix_web::test]
async fn crud_on_sqlite() {
    crud_scenario(TestDb::sqlite()).await;
}

#[actix_web::test]
async fn crud_on_postgres() {
    let Some(db) = TestDb::postgres("admin_api::crud_on_postgres") else { return };
    crud_scenario(db).await;
}

/// Everything the API shows of a realm, for before/after comparisons.
async fn dump<S, B>(app: &S, realm: &str) -> Value
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let base = format!("/admin/realms/{realm}");
    let (_, _, r) = call!(app, GET, base);
    let (_, _, clients) = call!(app, GET, format!("{base}/clients"));
    let mut full_clients = Vec::new();
    for c in clients.as_array().cloned().unwrap_or_default() {
        let (_, _, full) = call!(app, GET, format!("{base}/clients/{}", c["id"].as_str().unwrap()));
        full_clients.push(full);
    }
    let (_, _, idps) = call!(app, GET, format!("{base}/identity-provider/instances"));
    let mut mappers = Vec::new();
    for p in idps.as_array().cloned().unwrap_or_default() {
        let alias = p["alias"].as_str().unwrap();
        let (_, _, m) = call!(app, GET, format!("{base}/identity-provider/instances/{alias}/mappers"));
        mappers.push(m);
    }
    let (_, _, roles) = call!(app, GET, format!("{base}/roles"));
    let (_, _, users) = call!(app, GET, format!("{base}/users?max=1000"));
    let mut user_parts = Vec::new();
    for u in users.as_array().cloned().unwrap_or_default() {
        let id = u["id"].as_str().unwrap();
        let (_, _, links) = call!(app, GET, format!("{base}/users/{id}/federated-identity"));
        let (_, _, roles) = call!(app, GET, format!("{base}/users/{id}/role-mappings/realm"));
        user_parts.push(json!({"user": u, "links": links, "roles": roles}));
    }
    json!({"realm": r, "clients": full_clients, "idps": idps, "mappers": mappers, "roles": roles, "users": user_parts})
}

fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            Value::Object(o.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Checks that every field `expected` has (of those Federa keeps) reads back equal.
fn assert_subset(expected: &Value, got: &Value, path: &str) {
    match (expected, got) {
        (Value::Object(e), Value::Object(g)) => {
            for (k, v) in e {
                let gv = g.get(k).unwrap_or_else(|| panic!("{path}.{k} is missing in {got}"));
                assert_subset(v, gv, &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(without_nulls(expected), without_nulls(got), "{path}"),
    }
}

async fn import_scenario(db: TestDb) {
    let store = db.store();
    let st = state(&store);
    let app = app!(st);
    let text = std::fs::read_to_string(fixture("realm-acme.json")).unwrap();
    let source: Value = serde_json::from_str(&text).unwrap();
    let (s, loc, body) = call!(app, POST, "/admin/realms", source.clone());
    assert_eq!(s, 201, "{body}");
    assert_eq!(loc.as_deref(), Some("http://federa.test/admin/realms/acme"));
    assert_eq!(db.realm_names(), ["acme"], "the realm is in the test's own database");

    let got = dump(&app, "acme").await;
    for key in
        ["id", "realm", "displayName", "enabled", "loginTheme", "defaultSignatureAlgorithm", "accessTokenLifespan"]
    {
        assert_eq!(got["realm"][key], source[key], "realm.{key}");
    }
    assert!(got["realm"].get("sslRequired").is_none(), "ignored fields are not echoed back");

    // Clients: the two openid-connect ones, every field they declare that Federa keeps.
    let clients = got["clients"].as_array().unwrap();
    assert_eq!(clients.len(), 2, "the SAML client is skipped: {clients:?}");
    let kept = [
        "id",
        "clientId",
        "name",
        "description",
        "enabled",
        "protocol",
        "publicClient",
        "secret",
        "clientAuthenticatorType",
        "redirectUris",
        "webOrigins",
        "rootUrl",
        "baseUrl",
        "standardFlowEnabled",
        "implicitFlowEnabled",
        "directAccessGrantsEnabled",
        "serviceAccountsEnabled",
        "frontchannelLogout",
        "attributes",
        "defaultClientScopes",
        "optionalClientScopes",
    ];
    for expected in source["clients"].as_array().unwrap().iter().filter(|c| c["protocol"] != "saml") {
        let got = clients.iter().find(|c| c["clientId"] == expected["clientId"]).unwrap();
        for key in kept {
            if let Some(v) = expected.get(key) {
                assert_eq!(&got[key], v, "client {} {key}", expected["clientId"]);
            }
        }
    }
    let spa = clients.iter().find(|c| c["clientId"] == "spa").unwrap();
    assert!(spa.get("secret").is_none(), "public clients have no secret");

    // Identity providers: every config key of INTERFACE section 3 reads back, secret masked.
    let idps = got["idps"].as_array().unwrap();
    assert_eq!(idps.len(), 2);
    for expected in source["identityProviders"].as_array().unwrap() {
        let got = idps.iter().find(|p| p["alias"] == expected["alias"]).unwrap();
        let mut expected = expected.clone();
        expected["config"]["clientSecret"] = json!(MASK);
        assert_subset(&expected, got, &format!("identityProviders[{}]", expected["alias"]));
    }
    let corp = federa_broker::UpstreamStore::get_idp(&store, "acme", "corp-keycloak").await.unwrap().unwrap();
    assert_eq!(corp.config["clientSecret"], "corp-idp-secret-9d8e7f");

    // Mappers.
    let mut mappers: Vec<Value> =
        got["mappers"].as_array().unwrap().iter().flat_map(|m| m.as_array().unwrap().clone()).collect();
    mappers.sort_by_key(|m| m["id"].as_str().unwrap().to_owned());
    assert_eq!(mappers, source["identityProviderMappers"].as_array().unwrap().clone());

    // Roles.
    let roles: Vec<(Value, Value)> =
        got["roles"].as_array().unwrap().iter().map(|r| (r["name"].clone(), r["description"].clone())).collect();
    let mut expected: Vec<(Value, Value)> = source["roles"]["realm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].clone(), r.get("description").cloned().unwrap_or(Value::Null)))
        .collect();
    expected.sort_by_key(|(n, _)| n.as_str().unwrap().to_owned());
    assert_eq!(roles, expected);

    // Users with their roles and links.
    let users = got["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    let alice = users.iter().find(|u| u["user"]["username"] == "alice").unwrap();
    for key in ["id", "email", "emailVerified", "firstName", "lastName", "enabled", "createdTimestamp", "attributes"] {
        assert_eq!(alice["user"][key], source["users"][0][key], "alice {key}");
    }
    let role_names: Vec<&str> =
        alice["roles"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(role_names, vec!["admin", "staff"]);
    assert_eq!(alice["links"], source["users"][0]["federatedIdentities"]);
    let bob = users.iter().find(|u| u["user"]["username"] == "bob").unwrap();
    assert_eq!(bob["user"]["enabled"], false);

    // Importing the same realm again is a conflict and changes nothing.
    let before = store.row_counts().await.unwrap();
    let (s, _, body) = call!(app, POST, "/admin/realms", source);
    assert_eq!(s, 409, "{body}");
    assert_eq!(store.row_counts().await.unwrap(), before);
}

#[actix_web::test]
async fn keycloak_export_imports_and_reads_back_on_sqlite() {
    import_scenario(TestDb::sqlite()).await;
}

#[actix_web::test]
async fn keycloak_export_imports_and_reads_back_on_postgres() {
    let Some(db) = TestDb::postgres("admin_api::keycloak_export_imports_and_reads_back_on_postgres") else { return };
    assert_eq!(db.backend(), Backend::Postgres);
    import_scenario(db).await;
}

/// The five real exports of tests/fixtures/keycloak-exports import whole and
/// read back what SOURCES.md says each declares.
async fn real_exports(db: TestDb) {
    let store = db.store();
    let st = state(&store);
    let app = app!(st);
    // (file, realm, providers, mappers, openid-connect clients, realm roles, users)
    let cases = [
        ("01-tractusx-cx-central.json", "CX-Central", 7, 21, 79, 4, 53),
        ("02-bcgov-chefs.json", "chefs", 3, 11, 11, 5, 3),
        ("03-bcgov-vc-authn.json", "vc-authn", 1, 2, 10, 0, 0),
        ("04-bionicpro-yandex-export.json", "reports-realm", 1, 4, 9, 6, 7),
    ];
    for (file, realm, idps, mappers, clients, roles, users) in cases {
        let source: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture(&format!("keycloak-exports/{file}"))).unwrap())
                .unwrap();
        let (s, _, body) = call!(app, POST, "/admin/realms", source.clone());
        assert_eq!(s, 201, "{file}: {body}");
        let got = dump(&app, realm).await;
        assert_eq!(got["idps"].as_array().unwrap().len(), idps, "{file} providers");
        let n_mappers: usize = got["mappers"].as_array().unwrap().iter().map(|m| m.as_array().unwrap().len()).sum();
        assert_eq!(n_mappers, mappers, "{file} mappers");
        assert_eq!(got["clients"].as_array().unwrap().len(), clients, "{file} clients");
        assert_eq!(got["roles"].as_array().unwrap().len(), roles, "{file} roles");
        assert_eq!(got["users"].as_array().unwrap().len(), users, "{file} users");
        for expected in source["identityProviders"].as_array().unwrap() {
            let got = got["idps"].as_array().unwrap().iter().find(|p| p["alias"] == expected["alias"]).unwrap();
            for (k, v) in expected["config"].as_object().unwrap() {
                if k != "clientSecret" {
                    assert_eq!(&got["config"][k], v, "{file} {} config.{k}", expected["alias"]);
                }
            }
        }
        for expected in source["clients"].as_array().unwrap().iter().filter(|c| c["protocol"] == "openid-connect") {
            let got =
                got["clients"].as_array().unwrap().iter().find(|c| c["clientId"] == expected["clientId"]).unwrap();
            assert_eq!(got["redirectUris"], expected["redirectUris"], "{file} {} redirectUris", expected["clientId"]);
        }
    }
    // Read with a connection of the test's own: the rows are in `db`, on its backend.
    assert_eq!(db.realm_names(), ["CX-Central", "chefs", "reports-realm", "vc-authn"]);
    // 05 is the same realm name as 04: it goes into a fresh database on the same backend.
    let db2 = db.another();
    assert_eq!(db2.backend(), db.backend());
    let store2 = db2.store();
    let st2 = state(&store2);
    let app2 = app!(st2);
    let source: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("keycloak-exports/05-bionicpro-yandex-import.json")).unwrap(),
    )
    .unwrap();
    let (s, _, body) = call!(app2, POST, "/admin/realms", source);
    assert_eq!(s, 201, "05: {body}");
    let got = dump(&app2, "reports-realm").await;
    let n_mappers: usize = got["mappers"].as_array().unwrap().iter().map(|m| m.as_array().unwrap().len()).sum();
    assert_eq!((got["idps"].as_array().unwrap().len(), n_mappers), (1, 9));
    assert_eq!((got["clients"].as_array().unwrap().len(), got["users"].as_array().unwrap().len()), (2, 2));
    assert_eq!(db2.realm_names(), ["reports-realm"]);
}

#[actix_web::test]
async fn real_keycloak_exports_on_sqlite() {
    real_exports(TestDb::sqlite()).await;
}

#[actix_web::test]
async fn real_keycloak_exports_on_postgres() {
    let Some(db) = TestDb::postgres("admin_api::real_keycloak_exports_on_postgres") else { return };
    assert_eq!(db.backend(), Backend::Postgres);
    real_exports(db).await;
}

async fn refusals(db: TestDb) {
    let store = db.store();
    let st = state(&store);
    let app = app!(st);
    let source: Value = serde_json::from_str(&std::fs::read_to_string(fixture("realm-acme.json")).unwrap()).unwrap();
    assert_eq!(call!(app, POST, "/admin/realms", source).0, 201);
    let before_rows = store.row_counts().await.unwrap();
    let before_api = dump(&app, "acme").await;

    let good_idp = json!({"alias": "new-idp", "providerId": "oidc",
        "config": {"clientId": "c", "authorizationUrl": "https://a.test/auth", "tokenUrl": "https://a.test/token"}});
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = good_idp.clone();
        f(&mut v);
        v
    };
    let idps = "/admin/realms/acme/identity-provider/instances";
    // (what, method+path, body, status, field named in the message)
    let cases: Vec<(&str, &str, String, Value, u16, &str)> = vec![
        (
            "unknown syncMode",
            "POST",
            idps.into(),
            with(&|v| v["config"]["syncMode"] = json!("SOMETIMES")),
            400,
            "config.syncMode",
        ),
        ("unknown providerId", "POST", idps.into(), with(&|v| v["providerId"] = json!("saml")), 400, "providerId"),
        (
            "non-URL tokenUrl",
            "POST",
            idps.into(),
            with(&|v| v["config"]["tokenUrl"] = json!("not a url")),
            400,
            "config.tokenUrl",
        ),
        ("duplicate alias", "POST", idps.into(), with(&|v| v["alias"] = json!("corp-keycloak")), 409, "corp-keycloak"),
        (
            "missing realm",
            "POST",
            "/admin/realms/nope/identity-provider/instances".into(),
            good_idp.clone(),
            404,
            "nope",
        ),
        ("wrong type", "POST", idps.into(), with(&|v| v["enabled"] = json!("yes")), 400, "enabled"),
        (
            "duplicate clientId",
            "POST",
            "/admin/realms/acme/clients".into(),
            json!({"clientId": "portal"}),
            409,
            "portal",
        ),
        (
            "unknown mapper type",
            "POST",
            format!("{idps}/corp-keycloak/mappers"),
            json!({"name": "x", "identityProviderMapper": "saml-role-idp-mapper", "config": {}}),
            400,
            "identityProviderMapper",
        ),
        (
            "bad realm in body",
            "POST",
            "/admin/realms".into(),
            json!({"realm": "other", "identityProviders": [with(&|v| v["config"]["syncMode"] = json!("NEVER"))]}),
            400,
            "identityProviders[0].config.syncMode",
        ),
    ];
    for (what, method, path, body, status, needle) in cases {
        let (s, _, resp) = match method {
            "POST" => call!(app, POST, path, body),
            _ => unreachable!(),
        };
        assert_eq!(s, status, "{what}: {resp}");
        let msg = resp["errorMessage"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{what}: {msg:?} does not name {needle:?}");
        assert!(resp["error"].is_string(), "{what}: {resp}");
        assert_eq!(store.row_counts().await.unwrap(), before_rows, "{what} changed the database");
    }

    // Malformed JSON.
    let req = actix_web::test::TestRequest::post()
        .uri(idps)
        .insert_header(("Authorization", format!("Bearer {ADMIN_TOKEN}")))
        .insert_header(("Content-Type", "application/json"))
        .set_payload("{\"alias\": \"x\", ")
        .to_request();
    let resp = actix_web::test::call_service(&app, req).await;
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = actix_web::test::read_body_json(resp).await;
    assert!(body["errorMessage"].as_str().is_some_and(|m| !m.is_empty()), "{body}");

    // Missing and wrong token.
    for auth in [None, Some("Bearer wrong-token"), Some("Basic YWRtaW46YWRtaW4=")] {
        let mut req = actix_web::test::TestRequest::post().uri(idps).set_json(&good_idp);
        if let Some(a) = auth {
            req = req.insert_header(("Authorization", a));
        }
        let resp = actix_web::test::call_service(&app, req.to_request()).await;
        assert_eq!(resp.status().as_u16(), 401, "{auth:?}");
        let req = actix_web::test::TestRequest::delete().uri("/admin/realms/acme");
        let req = match auth {
            Some(a) => req.insert_header(("Authorization", a)),
            None => req,
        };
        assert_eq!(actix_web::test::call_service(&app, req.to_request()).await.status().as_u16(), 401);
    }
    assert_eq!(store.row_counts().await.unwrap(), before_rows);
    assert_eq!(dump(&app, "acme").await, before_api, "refused requests changed what the API shows");

    // And the good request, to show the refusals were about their one fault.
    assert_eq!(call!(app, POST, idps, good_idp).0, 201);
}

#[actix_web::test]
async fn refused_input_changes_nothing_on_sqlite() {
    refusals(TestDb::sqlite()).await;
}

#[actix_web::test]
async fn refused_input_changes_nothing_on_postgres() {
    let Some(db) = TestDb::postgres("admin_api::refused_input_changes_nothing_on_postgres") else { return };
    refusals(db).await;
}

/// No secret and no private key in clear anywhere in the SQLite files.
#[actix_web::test]
async fn no_secret_in_clear_at_rest() {
    let db = TestDb::sqlite();
    let store = db.store();
    let st = state(&store);
    let app = app!(st);
    let source: Value = serde_json::from_str(&std::fs::read_to_string(fixture("realm-acme.json")).unwrap()).unwrap();
    assert_eq!(call!(app, POST, "/admin/realms", source).0, 201);
    let client_secret = "client-secret-d41d8cd98f00b204e980";
    let idp_secret = "idp-secret-9e107d9d372bb6826bd81d";
    let (s, loc, _) =
        call!(app, POST, "/admin/realms/acme/clients", json!({"clientId": "raw", "secret": client_secret}));
    assert_eq!(s, 201);
    let idp = json!({"alias": "raw", "providerId": "oidc",
        "config": {"clientId": "c", "clientSecret": idp_secret, "issuer": "https://raw.test"}});
    assert_eq!(call!(app, POST, "/admin/realms/acme/identity-provider/instances", idp).0, 201);
    let keys = federa_broker::KeyStore::signing_keys(&store, "acme").await.unwrap();
    let pem = keys[0].private_pem.expose().to_owned();
    let pem_body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    drop(app);
    drop(st);
    drop(store);

    let mut bytes = Vec::new();
    let path = db.sqlite_path.clone().unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let p = format!("{}{suffix}", path.display());
        if let Ok(b) = std::fs::read(&p) {
            bytes.extend_from_slice(&b);
        }
    }
    assert!(bytes.len() > 10_000, "read the database files");
    let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    // The import's own secrets too.
    for secret in
        [client_secret, idp_secret, "portal-client-secret-4c1f9a", "corp-idp-secret-9d8e7f", "partners-secret-1a2b3c"]
    {
        assert!(!contains(secret), "{secret} is in clear in the database");
    }
    assert!(!contains("PRIVATE KEY"), "a PEM private key is in clear in the database");
    assert!(!contains(&pem_body[10..60]), "the realm's private key is in clear in the database");
    assert!(contains("raw"), "sanity: the client's clientId is stored in clear");

    // Reopened with the same key, everything decrypts.
    let store = db.store();
    let st = state(&store);
    let app = app!(st);
    let id = loc.unwrap().rsplit('/').next().unwrap().to_owned();
    let (_, _, c) = call!(app, GET, format!("/admin/realms/acme/clients/{id}"));
    assert_eq!(c["secret"], client_secret);
    let (_, _, list) = call!(app, GET, "/admin/realms/acme/clients");
    assert!(list.as_array().unwrap().iter().all(|c| c.get("secret").is_none_or(|s| s == MASK)), "{list}");
}

/// Reads go through the realm: a client, user or provider of one realm is not
/// found under another.
#[actix_web::test]
async fn realms_are_isolated() {
    let db = TestDb::sqlite();
    let store = db.store();
    let st = state(&store);
    let app = app!(st);
    assert_eq!(call!(app, POST, "/admin/realms", json!({"realm": "a"})).0, 201);
    assert_eq!(call!(app, POST, "/admin/realms", json!({"realm": "b"})).0, 201);
    let (_, loc, _) = call!(app, POST, "/admin/realms/a/clients", json!({"clientId": "x"}));
    let id = loc.unwrap().rsplit('/').next().unwrap().to_owned();
    assert_eq!(call!(app, GET, format!("/admin/realms/b/clients/{id}")).0, 404);
    assert_eq!(call!(app, DELETE, format!("/admin/realms/b/clients/{id}")).0, 404);
    assert_eq!(call!(app, GET, format!("/admin/realms/a/clients/{id}")).0, 200);
    // The same clientId may exist in two realms.
    assert_eq!(call!(app, POST, "/admin/realms/b/clients", json!({"clientId": "x"})).0, 201);
}
