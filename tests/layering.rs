//! The dependency rule of docs/ARCHITECTURE.md, held by a test: the protocol
//! core and the mappers name no HTTP framework, database, cache client, HTTP
//! client or template engine; the broker names neither the storage nor the
//! web crate (it defines the store traits those implement and use).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

const FORBIDDEN: &[&str] = &["actix", "diesel", "redis", "reqwest", "handlebars", "tokio"];

/// The packages `crates/<krate>` depends on, in every dependency section.
fn dependencies(krate: &str) -> Vec<String> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("crates").join(krate).join("Cargo.toml");
    let manifest: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    ["dependencies", "dev-dependencies", "build-dependencies"]
        .iter()
        .filter_map(|section| manifest.get(*section).and_then(|d| d.as_table()))
        .flat_map(|t| t.iter())
        // A renamed dependency (`store = { package = "federa-storage" }`) counts by its package.
        .map(|(key, spec)| spec.get("package").and_then(|p| p.as_str()).unwrap_or(key).to_owned())
        .collect()
}

#[test]
fn protocol_and_mappers_stay_pure() {
    for krate in ["protocol", "mappers"] {
        let deps = dependencies(krate);
        assert!(!deps.is_empty(), "{krate} has a manifest with dependencies");
        for dep in &deps {
            assert!(!FORBIDDEN.iter().any(|f| dep.contains(f)), "crates/{krate} depends on {dep}");
        }
    }
}

#[test]
fn only_web_and_the_binary_know_actix_and_handlebars() {
    for krate in ["protocol", "mappers", "broker", "storage"] {
        for dep in dependencies(krate) {
            assert!(!dep.contains("actix") && !dep.contains("handlebars"), "crates/{krate} depends on {dep}");
        }
    }
    for krate in ["protocol", "mappers", "broker", "web"] {
        for dep in dependencies(krate) {
            assert!(!dep.contains("diesel") && !dep.contains("redis"), "crates/{krate} depends on {dep}");
        }
    }
}

#[test]
fn broker_knows_neither_storage_nor_web() {
    let deps = dependencies("broker");
    assert!(deps.iter().any(|d| d == "federa-protocol"), "read the broker's manifest: {deps:?}");
    for dep in deps {
        assert!(!["federa-storage", "federa-web"].contains(&dep.as_str()), "crates/broker depends on {dep}");
    }
}
