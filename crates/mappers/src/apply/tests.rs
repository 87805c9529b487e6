//! Claims in, changes out: one row per case (mapper, provider sync mode,
//! first or later login, the user before, the expected changes).

use super::*;
use crate::MissingClaim;
use serde_json::json;

fn mapper(ty: &str, config: &[(&str, &str)]) -> Mapper {
    let config = config.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    match Mapper::parse("m", ty, &config) {
        Ok(m) => m,
        Err(e) => panic!("{ty} {e}"),
    }
}

fn claims() -> Map<String, Value> {
    json!({
        "sub": "u1",
        "preferred_username": "Alice",
        "email": "Alice@Example.test",
        "given_name": "Alice",
        "address": {"locality": "Lyon", "postal.code": "69001", "geo": {"lat": 45.76}},
        "groups": ["staff", "ops", null],
        "level": 3,
        "admin": true,
        "dept.name": "R&D",
        "nothing": null,
    })
    .as_object()
    .cloned()
    .unwrap_or_default()
}

fn user(first: bool, attrs: &[(&str, &[&str])], roles: &[&str]) -> UserState {
    UserState {
        first_login: first,
        username: "alice".into(),
        email: None,
        first_name: None,
        last_name: None,
        attributes: attrs.iter().map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect())).collect(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn set(name: &str, values: &[&str]) -> Change {
    Change::SetAttribute { name: name.into(), values: values.iter().map(|s| (*s).to_owned()).collect() }
}
fn grant(r: &str) -> Change {
    Change::GrantRole(r.into())
}
fn revoke(r: &str) -> Change {
    Change::RevokeRole(r.into())
}
fn remove(a: &str) -> Change {
    Change::RemoveAttribute(a.into())
}

const FIRST: bool = true;
const LATER: bool = false;

struct Case {
    what: &'static str,
    ty: &'static str,
    config: &'static [(&'static str, &'static str)],
    idp: SyncMode,
    user: UserState,
    expected: Vec<Change>,
}

#[test]
fn table() {
    use SyncMode::{Force, Import, Legacy};
    let role_cfg: &[(&str, &str)] = &[("claim", "groups"), ("claim.value", "ops"), ("role", "operator")];
    let gone_cfg: &[(&str, &str)] = &[("claim", "groups"), ("claim.value", "admins"), ("role", "operator")];
    let cases = vec![
        // Hardcoded role.
        Case {
            what: "hardcoded role, first login",
            ty: "hardcoded-role-idp-mapper",
            config: &[("role", "r")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![grant("r")],
        },
        Case {
            what: "hardcoded role, IMPORT later",
            ty: "hardcoded-role-idp-mapper",
            config: &[("role", "r")],
            idp: Import,
            user: user(LATER, &[], &[]),
            expected: vec![],
        },
        Case {
            what: "hardcoded role, FORCE later",
            ty: "hardcoded-role-idp-mapper",
            config: &[("role", "r")],
            idp: Force,
            user: user(LATER, &[], &[]),
            expected: vec![grant("r")],
        },
        Case {
            what: "hardcoded role, FORCE later, already granted",
            ty: "hardcoded-role-idp-mapper",
            config: &[("role", "r")],
            idp: Force,
            user: user(LATER, &[], &["r"]),
            expected: vec![],
        },
        Case {
            what: "hardcoded role, LEGACY later",
            ty: "hardcoded-role-idp-mapper",
            config: &[("role", "r")],
            idp: Legacy,
            user: user(LATER, &[], &[]),
            expected: vec![],
        },
        Case {
            what: "hardcoded role, mapper FORCE over IdP IMPORT",
            ty: "hardcoded-role-idp-mapper",
            config: &[("role", "r"), ("syncMode", "FORCE")],
            idp: Import,
            user: user(LATER, &[], &[]),
            expected: vec![grant("r")],
        },
        Case {
            what: "hardcoded role, mapper IMPORT over IdP FORCE",
            ty: "hardcoded-role-idp-mapper",
            config: &[("role", "r"), ("syncMode", "IMPORT")],
            idp: Force,
            user: user(LATER, &[], &[]),
            expected: vec![],
        },
        Case {
            what: "hardcoded role, mapper INHERIT of FORCE",
            ty: "hardcoded-role-idp-mapper",
            config: &[("role", "r"), ("syncMode", "INHERIT")],
            idp: Force,
            user: user(LATER, &[], &[]),
            expected: vec![grant("r")],
        },
        // Hardcoded attribute.
        Case {
            what: "hardcoded attribute, first login",
            ty: "hardcoded-attribute-idp-mapper",
            config: &[("attribute", "tier"), ("attribute.value", "gold")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![set("tier", &["gold"])],
        },
        Case {
            what: "hardcoded attribute, IMPORT later",
            ty: "hardcoded-attribute-idp-mapper",
            config: &[("attribute", "tier"), ("attribute.value", "gold")],
            idp: Import,
            user: user(LATER, &[("tier", &["silver"])], &[]),
            expected: vec![],
        },
        Case {
            what: "hardcoded attribute, FORCE later overwrites",
            ty: "hardcoded-attribute-idp-mapper",
            config: &[("attribute", "tier"), ("attribute.value", "gold")],
            idp: Force,
            user: user(LATER, &[("tier", &["silver"])], &[]),
            expected: vec![set("tier", &["gold"])],
        },
        Case {
            what: "hardcoded attribute, LEGACY later overwrites",
            ty: "hardcoded-attribute-idp-mapper",
            config: &[("attribute", "tier"), ("attribute.value", "gold")],
            idp: Legacy,
            user: user(LATER, &[("tier", &["silver"])], &[]),
            expected: vec![set("tier", &["gold"])],
        },
        Case {
            what: "hardcoded attribute, FORCE later, unchanged",
            ty: "hardcoded-attribute-idp-mapper",
            config: &[("attribute", "tier"), ("attribute.value", "gold")],
            idp: Force,
            user: user(LATER, &[("tier", &["gold"])], &[]),
            expected: vec![],
        },
        // User attribute.
        Case {
            what: "attribute from a nested claim",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "address.locality"), ("user.attribute", "city")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![set("city", &["Lyon"])],
        },
        Case {
            what: "attribute from a nested claim with a literal dot",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "address.postal\\.code"), ("user.attribute", "zip")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![set("zip", &["69001"])],
        },
        Case {
            what: "attribute from a top-level claim with a dot",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "dept\\.name"), ("user.attribute", "dept")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![set("dept", &["R&D"])],
        },
        Case {
            what: "attribute from a deep number",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "address.geo.lat"), ("user.attribute", "lat")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![set("lat", &["45.76"])],
        },
        Case {
            what: "array claim: multi-valued, nulls dropped",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "groups"), ("user.attribute", "groups")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![set("groups", &["staff", "ops"])],
        },
        Case {
            what: "number claim rendered",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "level"), ("user.attribute", "level")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![set("level", &["3"])],
        },
        Case {
            what: "boolean claim rendered",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "admin"), ("user.attribute", "admin")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![set("admin", &["true"])],
        },
        Case {
            what: "object claim rendered as JSON",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "address.geo"), ("user.attribute", "geo")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![set("geo", &["{\"lat\":45.76}"])],
        },
        Case {
            what: "missing claim, first login: nothing",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "missing"), ("user.attribute", "x")],
            idp: Force,
            user: user(FIRST, &[], &[]),
            expected: vec![],
        },
        Case {
            what: "null claim, FORCE later: removed",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "nothing"), ("user.attribute", "x")],
            idp: Force,
            user: user(LATER, &[("x", &["old"])], &[]),
            expected: vec![remove("x")],
        },
        Case {
            what: "missing nested claim, FORCE later: removed",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "address.street"), ("user.attribute", "street")],
            idp: Force,
            user: user(LATER, &[("street", &["old"])], &[]),
            expected: vec![remove("street")],
        },
        Case {
            what: "missing claim, IMPORT later: kept",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "missing"), ("user.attribute", "x")],
            idp: Import,
            user: user(LATER, &[("x", &["old"])], &[]),
            expected: vec![],
        },
        Case {
            what: "changed claim, FORCE later",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "address.locality"), ("user.attribute", "city")],
            idp: Force,
            user: user(LATER, &[("city", &["Paris"])], &[]),
            expected: vec![set("city", &["Lyon"])],
        },
        Case {
            what: "changed claim, LEGACY later",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "address.locality"), ("user.attribute", "city")],
            idp: Legacy,
            user: user(LATER, &[("city", &["Paris"])], &[]),
            expected: vec![set("city", &["Lyon"])],
        },
        Case {
            what: "changed claim, IMPORT later",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "address.locality"), ("user.attribute", "city")],
            idp: Import,
            user: user(LATER, &[("city", &["Paris"])], &[]),
            expected: vec![],
        },
        Case {
            what: "email target sets the field, lowercased",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "email"), ("user.attribute", "email")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![Change::SetEmail("alice@example.test".into())],
        },
        Case {
            what: "firstName target (any case)",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "given_name"), ("user.attribute", "FIRSTNAME")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![Change::SetFirstName("Alice".into())],
        },
        Case {
            what: "lastName target from the first array element",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "groups"), ("user.attribute", "lastName")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![Change::SetLastName("staff".into())],
        },
        Case {
            what: "username target",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "preferred_username"), ("user.attribute", "username")],
            idp: Force,
            user: UserState { username: "bob".into(), ..user(LATER, &[], &[]) },
            expected: vec![Change::SetUsername("alice".into())],
        },
        Case {
            what: "email target, missing claim: nothing",
            ty: "oidc-user-attribute-idp-mapper",
            config: &[("claim", "missing"), ("user.attribute", "email")],
            idp: Force,
            user: user(LATER, &[], &[]),
            expected: vec![],
        },
        // Claim to role.
        Case {
            what: "claim to role, array element matches, first",
            ty: "oidc-role-idp-mapper",
            config: role_cfg,
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![grant("operator")],
        },
        Case {
            what: "claim to role, no match, first",
            ty: "oidc-role-idp-mapper",
            config: gone_cfg,
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![],
        },
        Case {
            what: "claim to role, FORCE later, match",
            ty: "oidc-role-idp-mapper",
            config: role_cfg,
            idp: Force,
            user: user(LATER, &[], &[]),
            expected: vec![grant("operator")],
        },
        Case {
            what: "claim to role, FORCE later, no longer matches",
            ty: "oidc-role-idp-mapper",
            config: gone_cfg,
            idp: Force,
            user: user(LATER, &[], &["operator"]),
            expected: vec![revoke("operator")],
        },
        Case {
            what: "claim to role, IMPORT later, no longer matches",
            ty: "oidc-role-idp-mapper",
            config: gone_cfg,
            idp: Import,
            user: user(LATER, &[], &["operator"]),
            expected: vec![],
        },
        Case {
            what: "claim to role, LEGACY later, no longer matches",
            ty: "oidc-role-idp-mapper",
            config: gone_cfg,
            idp: Legacy,
            user: user(LATER, &[], &["operator"]),
            expected: vec![revoke("operator")],
        },
        Case {
            what: "claim to role, LEGACY later, match: not granted",
            ty: "oidc-role-idp-mapper",
            config: role_cfg,
            idp: Legacy,
            user: user(LATER, &[], &[]),
            expected: vec![],
        },
        Case {
            what: "claim to role, number claim",
            ty: "oidc-role-idp-mapper",
            config: &[("claim", "level"), ("claim.value", "3"), ("role", "l3")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![grant("l3")],
        },
        Case {
            what: "claim to role, boolean claim",
            ty: "oidc-role-idp-mapper",
            config: &[("claim", "admin"), ("claim.value", "true"), ("role", "a")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![grant("a")],
        },
        Case {
            what: "claim to role, nested claim",
            ty: "oidc-role-idp-mapper",
            config: &[("claim", "address.locality"), ("claim.value", "Lyon"), ("role", "lyon")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![grant("lyon")],
        },
        Case {
            what: "claim to role, missing claim, FORCE later",
            ty: "oidc-role-idp-mapper",
            config: &[("claim", "missing"), ("claim.value", "x"), ("role", "r")],
            idp: Force,
            user: user(LATER, &[], &["r"]),
            expected: vec![revoke("r")],
        },
        // Advanced claim to role.
        Case {
            what: "advanced, all match",
            ty: "oidc-advanced-role-idp-mapper",
            config: &[
                ("claims", r#"[{"key":"groups","value":"staff"},{"key":"address.locality","value":"Lyon"}]"#),
                ("role", "r"),
            ],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![grant("r")],
        },
        Case {
            what: "advanced, one differs",
            ty: "oidc-advanced-role-idp-mapper",
            config: &[
                ("claims", r#"[{"key":"groups","value":"staff"},{"key":"address.locality","value":"Paris"}]"#),
                ("role", "r"),
            ],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![],
        },
        Case {
            what: "advanced, regex on an array",
            ty: "oidc-advanced-role-idp-mapper",
            config: &[
                ("claims", r#"[{"key":"groups","value":"o.s"}]"#),
                ("are.claim.values.regex", "true"),
                ("role", "r"),
            ],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![grant("r")],
        },
        Case {
            what: "advanced, regex matches whole values only",
            ty: "oidc-advanced-role-idp-mapper",
            config: &[
                ("claims", r#"[{"key":"groups","value":"o"}]"#),
                ("are.claim.values.regex", "true"),
                ("role", "r"),
            ],
            idp: Force,
            user: user(LATER, &[], &["r"]),
            expected: vec![revoke("r")],
        },
        Case {
            what: "advanced, regex on a number",
            ty: "oidc-advanced-role-idp-mapper",
            config: &[
                ("claims", r#"[{"key":"level","value":"[0-9]"}]"#),
                ("are.claim.values.regex", "true"),
                ("role", "r"),
            ],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![grant("r")],
        },
        Case {
            what: "advanced, not regex: pattern taken literally",
            ty: "oidc-advanced-role-idp-mapper",
            config: &[("claims", r#"[{"key":"groups","value":"o.s"}]"#), ("role", "r")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![],
        },
        Case {
            what: "advanced, LEGACY later, no match",
            ty: "oidc-advanced-role-idp-mapper",
            config: &[("claims", r#"[{"key":"missing","value":"x"}]"#), ("role", "r")],
            idp: Legacy,
            user: user(LATER, &[], &["r"]),
            expected: vec![revoke("r")],
        },
        // Username.
        Case {
            what: "username template",
            ty: "oidc-username-idp-mapper",
            config: &[("template", "${ALIAS}.${CLAIM.preferred_username}")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![Change::SetUsername("corp.alice".into())],
        },
        Case {
            what: "username template, nested claim, uppercase",
            ty: "oidc-username-idp-mapper",
            config: &[("template", "${CLAIM.address.locality | uppercase}-${CLAIM.sub}")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![Change::SetUsername("lyon-u1".into())],
        },
        Case {
            what: "username template, IMPORT later",
            ty: "oidc-username-idp-mapper",
            config: &[("template", "${ALIAS}.${CLAIM.preferred_username}")],
            idp: Import,
            user: user(LATER, &[], &[]),
            expected: vec![],
        },
        Case {
            what: "username template, FORCE later",
            ty: "oidc-username-idp-mapper",
            config: &[("template", "${ALIAS}.${CLAIM.preferred_username}")],
            idp: Force,
            user: user(LATER, &[], &[]),
            expected: vec![Change::SetUsername("corp.alice".into())],
        },
        Case {
            what: "username template, BROKER_ID target: no user change",
            ty: "oidc-username-idp-mapper",
            config: &[("template", "${CLAIM.email}"), ("target", "BROKER_ID")],
            idp: Force,
            user: user(FIRST, &[], &[]),
            expected: vec![],
        },
        Case {
            what: "username template, only a missing claim: nothing",
            ty: "oidc-username-idp-mapper",
            config: &[("template", "${CLAIM.missing}")],
            idp: Import,
            user: user(FIRST, &[], &[]),
            expected: vec![],
        },
    ];
    let claims = claims();
    for c in cases {
        let m = mapper(c.ty, c.config);
        let login = Login { claims: &claims, alias: "corp", sync_mode: c.idp };
        assert_eq!(changes(&[m], &login, &c.user), c.expected, "{}", c.what);
    }
}

#[test]
fn mappers_run_in_order() {
    let claims = claims();
    let login = Login { claims: &claims, alias: "corp", sync_mode: SyncMode::Force };
    let grants = mapper("hardcoded-role-idp-mapper", &[("role", "r")]);
    let revokes = mapper("oidc-role-idp-mapper", &[("claim", "missing"), ("claim.value", "x"), ("role", "r")]);
    // Granted then revoked: the user ends without the role, whatever they had.
    let both = [grants.clone(), revokes.clone()];
    assert_eq!(changes(&both, &login, &user(LATER, &[], &[])), vec![grant("r"), revoke("r")]);
    assert_eq!(changes(&both, &login, &user(LATER, &[], &["r"])), vec![revoke("r")]);
    // Revoked then granted: the user ends with it.
    let both = [revokes, grants];
    assert_eq!(changes(&both, &login, &user(LATER, &[], &["r"])), vec![revoke("r"), grant("r")]);
}

#[test]
fn broker_id_and_username_targets() {
    let claims = claims();
    let id = mapper("oidc-username-idp-mapper", &[("template", "${CLAIM.email | lowercase}"), ("target", "BROKER_ID")]);
    assert_eq!(id.username_for(UsernameTarget::BrokerId, &claims, "corp"), Some(Ok("alice@example.test".into())));
    assert_eq!(id.username_for(UsernameTarget::Local, &claims, "corp"), None);
    let un = mapper(
        "oidc-username-idp-mapper",
        &[("template", "${ALIAS | uppercase}/${CLAIM.sub}"), ("target", "BROKER_USERNAME")],
    );
    assert_eq!(un.username_for(UsernameTarget::BrokerUsername, &claims, "corp"), Some(Ok("CORP/u1".into())));
}

/// A template naming a claim that is missing, null, empty, or an object or
/// array is not used, whatever its target: rendered without it, every user
/// lacking the claim would get one name ("corp." for all).
#[test]
fn templates_missing_a_claim_are_not_used() {
    let claims = claims();
    let missing = |c: &str| Some(Err(MissingClaim(c.into())));
    let cases: &[(&str, Option<Result<String, MissingClaim>>)] = &[
        ("${ALIAS}.${CLAIM.email}", Some(Ok("corp.Alice@Example.test".into()))),
        ("${CLAIM.level}-${CLAIM.admin}", Some(Ok("3-true".into()))),
        ("${CLAIM.address.locality}", Some(Ok("Lyon".into()))),
        ("${ALIAS}.${CLAIM.phone}", missing("phone")),
        ("${ALIAS}.${CLAIM.nothing}", missing("nothing")),
        ("${ALIAS}.${CLAIM.blank}", missing("blank")),
        ("${ALIAS}.${CLAIM.groups}", missing("groups")),
        ("${ALIAS}.${CLAIM.address}", missing("address")),
        ("${CLAIM.sub}.${CLAIM.address.zip}", missing("address.zip")),
    ];
    let mut claims = claims;
    claims.insert("blank".into(), json!(" "));
    for (template, expected) in cases {
        for target in ["BROKER_ID", "BROKER_USERNAME", "LOCAL"] {
            let m = mapper("oidc-username-idp-mapper", &[("template", template), ("target", target)]);
            let t = match target {
                "BROKER_ID" => UsernameTarget::BrokerId,
                "BROKER_USERNAME" => UsernameTarget::BrokerUsername,
                _ => UsernameTarget::Local,
            };
            assert_eq!(&m.username_for(t, &claims, "corp"), expected, "{template} {target}");
            // LOCAL: the template's username, or no change (the default stays).
            if target == "LOCAL" {
                let login = Login { claims: &claims, alias: "corp", sync_mode: SyncMode::Force };
                let want: Vec<Change> = match expected {
                    Some(Ok(name)) => vec![Change::SetUsername(name.to_lowercase())],
                    _ => Vec::new(),
                };
                assert_eq!(changes(&[m], &login, &user(LATER, &[], &[])), want, "{template} LOCAL");
            }
        }
    }
}
