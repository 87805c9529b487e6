//! A mapper's configuration, typed once: claim paths split, regexes compiled,
//! the username template parsed.

use std::collections::BTreeMap;

use federa_protocol::MapperSyncMode;
use serde_json::{Map, Value};

use crate::claims::{self, ClaimPath};
use crate::{MapperError, MapperType};

/// A mapper ready to run.
#[derive(Debug, Clone)]
pub struct Mapper {
    /// Its name, for logs.
    pub name: String,
    /// Its sync mode (`INHERIT` when absent).
    pub sync_mode: MapperSyncMode,
    pub(crate) rule: Rule,
}

/// Where a user attribute mapper writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AttributeTarget {
    Email,
    FirstName,
    LastName,
    Username,
    Attribute(String),
}

/// Where the username template's result goes (Keycloak's `target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameTarget {
    /// The local user's username (the default).
    Local,
    /// The identity's id at the provider: the subject the link is kept under.
    BrokerId,
    /// The identity's username at the provider, kept on the link.
    BrokerUsername,
}

#[derive(Debug, Clone)]
pub(crate) enum Rule {
    HardcodedRole { role: String },
    HardcodedAttribute { attribute: String, value: Option<String> },
    UserAttribute { claim: ClaimPath, target: AttributeTarget },
    ClaimToRole { claim: ClaimPath, value: String, role: String },
    AdvancedClaimToRole { claims: Vec<(ClaimPath, Match)>, role: String },
    Username { template: Vec<Piece>, target: UsernameTarget },
}

#[derive(Debug, Clone)]
pub(crate) enum Match {
    Equals(String),
    Regex(regex::Regex),
}

impl Match {
    pub(crate) fn matches(&self, v: Option<&Value>) -> bool {
        match self {
            Self::Equals(d) => claims::value_equals(d, v),
            Self::Regex(r) => claims::value_matches(r, v),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Text(String),
    Alias(Case),
    Claim(ClaimPath, Case),
}

fn err(field: &'static str, message: impl Into<String>) -> MapperError {
    MapperError { field, message: message.into() }
}

impl Mapper {
    /// Types a mapper's configuration, naming the field at fault.
    pub fn parse(name: &str, type_name: &str, config: &BTreeMap<String, String>) -> Result<Self, MapperError> {
        let spec = crate::validate_keys(type_name, config)?;
        let get = |k: &str| config.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let req = |k: &str| get(k).map(str::to_owned).unwrap_or_default();
        let rule = match spec.kind {
            MapperType::HardcodedRole => Rule::HardcodedRole { role: req("role") },
            MapperType::HardcodedAttribute => {
                Rule::HardcodedAttribute { attribute: req("attribute"), value: config.get("attribute.value").cloned() }
            }
            MapperType::UserAttribute => {
                let attr = req("user.attribute");
                let target = match attr.to_ascii_lowercase().as_str() {
                    "email" => AttributeTarget::Email,
                    "firstname" => AttributeTarget::FirstName,
                    "lastname" => AttributeTarget::LastName,
                    "username" => AttributeTarget::Username,
                    _ => AttributeTarget::Attribute(attr),
                };
                Rule::UserAttribute { claim: ClaimPath::parse(&req("claim")), target }
            }
            MapperType::ClaimToRole => Rule::ClaimToRole {
                claim: ClaimPath::parse(&req("claim")),
                value: config.get("claim.value").cloned().unwrap_or_default(),
                role: req("role"),
            },
            MapperType::AdvancedClaimToRole => {
                let regex = get("are.claim.values.regex").is_some_and(|v| v.eq_ignore_ascii_case("true"));
                let list: Vec<Value> = serde_json::from_str(get("claims").unwrap_or("[]"))
                    .map_err(|_| err("config.claims", "must be a JSON array"))?;
                let mut claims = Vec::new();
                for item in &list {
                    let key = item.get("key").and_then(Value::as_str).filter(|k| !k.is_empty());
                    let key = key.ok_or_else(|| err("config.claims", "each element needs a non-empty \"key\""))?;
                    let value = item.get("value").and_then(Value::as_str).unwrap_or_default();
                    let m = if regex {
                        // Keycloak's `matches`: the whole value, not a part of it.
                        let r = regex::Regex::new(&format!("^(?:{value})$"))
                            .map_err(|e| err("config.claims", format!("value of {key:?} is not a regex: {e}")))?;
                        Match::Regex(r)
                    } else {
                        Match::Equals(value.to_owned())
                    };
                    claims.push((ClaimPath::parse(key), m));
                }
                Rule::AdvancedClaimToRole { claims, role: req("role") }
            }
            MapperType::Username => {
                let target = match get("target") {
                    None | Some("LOCAL") => UsernameTarget::Local,
                    Some("BROKER_ID") => UsernameTarget::BrokerId,
                    Some("BROKER_USERNAME") => UsernameTarget::BrokerUsername,
                    Some(other) => {
                        return Err(err(
                            "config.target",
                            format!("unknown target {other:?}; allowed: LOCAL, BROKER_ID, BROKER_USERNAME"),
                        ))
                    }
                };
                Rule::Username { template: parse_template(&req("template"))?, target }
            }
        };
        Ok(Self { name: name.to_owned(), sync_mode: spec.sync_mode, rule })
    }

    /// The username template's result for a target, when this mapper is a
    /// username mapper with that target: `Err` when a claim it names is
    /// missing, empty or not a scalar (the template is then not used:
    /// rendering it without the claim would give many users one name).
    pub fn username_for(
        &self,
        target: UsernameTarget,
        claims: &Map<String, Value>,
        alias: &str,
    ) -> Option<Result<String, MissingClaim>> {
        match &self.rule {
            Rule::Username { template, target: t } if *t == target => Some(render_template(template, claims, alias)),
            _ => None,
        }
    }
}

/// A claim a username template names that the sign-in's claims lack, hold
/// empty, or hold as an object or array: its path as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingClaim(pub String);

impl std::fmt::Display for MissingClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the claim {:?} is missing, empty or not a single value", self.0)
    }
}

/// `${ALIAS}`, `${CLAIM.<path>}`, each optionally followed by `| lowercase`
/// or `| uppercase`; the rest is literal text.
fn parse_template(t: &str) -> Result<Vec<Piece>, MapperError> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            out.push(Piece::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| err("config.template", "a ${ is not closed"))?;
        let inner = &after[..end];
        let (var, case) = match inner.split_once('|') {
            None => (inner.trim(), Case::Keep),
            Some((v, f)) => {
                let case = match f.trim() {
                    "lowercase" => Case::Lower,
                    "uppercase" => Case::Upper,
                    other => {
                        return Err(err(
                            "config.template",
                            format!("unknown transformation {other:?}; allowed: lowercase, uppercase"),
                        ))
                    }
                };
                (v.trim(), case)
            }
        };
        let piece = match var {
            "ALIAS" => Piece::Alias(case),
            v if v.starts_with("CLAIM.") && v.len() > "CLAIM.".len() => {
                Piece::Claim(ClaimPath::parse(&v["CLAIM.".len()..]), case)
            }
            other => {
                return Err(err(
                    "config.template",
                    format!("unsupported substitution ${{{other}}}; supported: ${{ALIAS}}, ${{CLAIM.<name>}}"),
                ))
            }
        };
        out.push(piece);
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_owned()));
    }
    Ok(out)
}

fn cased(s: String, case: Case) -> String {
    match case {
        Case::Keep => s,
        Case::Lower => s.to_lowercase(),
        Case::Upper => s.to_uppercase(),
    }
}

/// The template rendered, or the first claim it names that is missing,
/// empty, or not a string, number or boolean. (Keycloak renders such a
/// claim as nothing; Federa does not, so that users without the claim do
/// not all get the same name or link.)
pub(crate) fn render_template(
    pieces: &[Piece],
    claims: &Map<String, Value>,
    alias: &str,
) -> Result<String, MissingClaim> {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => s.push_str(t),
            Piece::Alias(c) => s.push_str(&cased(alias.to_owned(), *c)),
            Piece::Claim(path, c) => {
                let value = match path.find(claims) {
                    Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => claims::render(v),
                    _ => String::new(),
                };
                if value.trim().is_empty() {
                    return Err(MissingClaim(path.dotted()));
                }
                s.push_str(&cased(value, *c));
            }
        }
    }
    Ok(s)
}
