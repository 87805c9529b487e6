//! Reading upstream claims as Keycloak's claim mappers do: dotted paths into
//! nested objects (`address.locality`, with `\.` for a literal dot), values
//! compared as strings, and arrays as several values.

use serde_json::{Map, Value};

/// A claim name split into the keys of nested objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPath(Vec<String>);

impl ClaimPath {
    /// Splits `a.b\.c` into `a` and `b.c`. A backslash before anything but a
    /// dot is kept as written.
    pub fn parse(raw: &str) -> Self {
        let mut parts = vec![String::new()];
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&'.') => {
                    chars.next();
                    push(&mut parts, '.');
                }
                '.' => parts.push(String::new()),
                c => push(&mut parts, c),
            }
        }
        Self(parts)
    }

    /// The path as a dotted name, for messages.
    pub fn dotted(&self) -> String {
        self.0.join(".")
    }

    /// The value at this path, when every object on the way is there.
    pub fn find<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a Value> {
        let (last, objects) = self.0.split_last()?;
        let mut here = claims;
        for key in objects {
            here = here.get(key)?.as_object()?;
        }
        here.get(last).filter(|v| !v.is_null())
    }
}

fn push(parts: &mut [String], c: char) {
    if let Some(p) = parts.last_mut() {
        p.push(c);
    }
}

/// A claim value as the string Keycloak would store: strings as they are,
/// numbers and booleans as written, objects and arrays as JSON.
pub fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A claim as attribute values: an array gives one value per non-null
/// element, null or absent gives none, anything else one value.
pub fn values(v: Option<&Value>) -> Vec<String> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().filter(|i| !i.is_null()).map(render).collect(),
        Some(other) => vec![render(other)],
    }
}

/// Keycloak's `valueEquals`: a string equals the desired text; a number or
/// boolean equals it when the text reads as the same number or boolean; an
/// array matches when one of its elements does.
pub fn value_equals(desired: &str, v: Option<&Value>) -> bool {
    match v {
        Some(Value::String(s)) => s == desired,
        Some(Value::Number(n)) => match (n.as_f64(), desired.trim().parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        Some(Value::Bool(b)) => desired.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Some(Value::Array(items)) => items.iter().any(|i| value_equals(desired, Some(i))),
        _ => false,
    }
}

/// Keycloak's `valueMatchesRegex`: the whole string (or, for an array, one
/// element's string) matches the pattern.
pub fn value_matches(pattern: &regex::Regex, v: Option<&Value>) -> bool {
    match v {
        Some(Value::Array(items)) => items.iter().any(|i| value_matches(pattern, Some(i))),
        Some(Value::Null) | None => false,
        Some(Value::Object(_)) => false,
        Some(other) => pattern.is_match(&render(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths() {
        let claims = json!({
            "a": {"b": {"c": "deep"}},
            "x.y": "literal",
            "n": 5,
            "nul": null,
            "arr": ["one", 2, null, true],
        });
        let claims = claims.as_object().cloned().unwrap_or_default();
        let cases: &[(&str, Option<Value>)] = &[
            ("a.b.c", Some(json!("deep"))),
            ("a.b", Some(json!({"c": "deep"}))),
            ("a.x.c", None),
            ("x\\.y", Some(json!("literal"))),
            ("x.y", None),
            ("n", Some(json!(5))),
            ("n.m", None),
            ("nul", None),
            ("missing", None),
        ];
        for (path, expected) in cases {
            assert_eq!(ClaimPath::parse(path).find(&claims), expected.as_ref(), "{path}");
        }
        assert_eq!(values(claims.get("arr")), ["one", "2", "true"]);
        assert_eq!(values(claims.get("n")), ["5"]);
        assert!(values(claims.get("nul")).is_empty());
    }

    #[test]
    fn equality() {
        let cases: &[(&str, Value, bool)] = &[
            ("admin", json!("admin"), true),
            ("admin", json!("Admin"), false),
            ("5", json!(5), true),
            ("5.0", json!(5), true),
            ("five", json!(5), false),
            ("true", json!(true), true),
            ("TRUE", json!(true), true),
            ("false", json!(true), false),
            ("b", json!(["a", "b"]), true),
            ("c", json!(["a", "b"]), false),
            ("1", json!([1, 2]), true),
            ("x", json!({"x": 1}), false),
        ];
        for (desired, v, expected) in cases {
            assert_eq!(value_equals(desired, Some(v)), *expected, "{desired} {v}");
        }
        assert!(!value_equals("", None));
    }
}
