//! The dependency rule of docs/ARCHITECTURE.md, held by a test: the protocol
//! core and the mappers name no HTTP framework, database, cache client, HTTP
//! client or template engine.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

const FORBIDDEN: &[&str] = &["actix", "diesel", "redis", "reqwest", "handlebars", "tokio"];

fn dependencies(krate: &str) -> Vec<String> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("crates").join(krate).join("Cargo.toml");
    let manifest: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    ["dependencies", "dev-dependencies", "build-dependencies"]
        .iter()
        .filter_map(|section| manifest.get(*section).and_then(|d| d.as_table()))
        .flat_map(|t| t.keys().cloned())
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
