//! What to say about a `FEDERA_` environment variable that is not a setting:
//! whether it looks like one Kubernetes sets for a Service named `federa`, or
//! which setting it was probably meant to be. Only the name is looked at;
//! values may be secrets.

use super::layers::NON_SETTING_ENV;
use super::table::SETTINGS;

/// The message for an unknown `FEDERA_` variable `name`.
pub(super) fn unknown_variable(name: &str) -> String {
    if is_service_link(name) {
        return "unknown setting (Kubernetes sets it for a Service named federa)".to_owned();
    }
    match nearest_known(name) {
        Some(known) => format!("unknown setting; did you mean {known}?"),
        None => "unknown setting".to_owned(),
    }
}

/// Whether `name` has the shape of a Kubernetes service link variable for a
/// Service named `federa`: `FEDERA_SERVICE_HOST`, `FEDERA_SERVICE_PORT`,
/// `FEDERA_SERVICE_PORT_<PORT NAME>`, `FEDERA_PORT`, `FEDERA_PORT_<N>_<PROTO>`
/// and `FEDERA_PORT_<N>_<PROTO>_{PROTO,PORT,ADDR}`.
pub(super) fn is_service_link(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("FEDERA_") else { return false };
    if matches!(rest, "PORT" | "SERVICE_HOST" | "SERVICE_PORT") {
        return true;
    }
    if rest.strip_prefix("SERVICE_PORT_").is_some_and(|port_name| !port_name.is_empty()) {
        return true;
    }
    let Some(rest) = rest.strip_prefix("PORT_") else { return false };
    let mut parts = rest.split('_');
    let number = parts.next().unwrap_or_default();
    let protocol = parts.next().unwrap_or_default();
    let field = parts.next();
    !number.is_empty()
        && number.bytes().all(|byte| byte.is_ascii_digit())
        && matches!(protocol, "TCP" | "UDP" | "SCTP")
        && matches!(field, None | Some("PROTO" | "PORT" | "ADDR"))
        && parts.next().is_none()
}

/// The known variable closest to `name`, when it is close enough to be a typo
/// (at most two edits).
fn nearest_known(name: &str) -> Option<String> {
    let known =
        SETTINGS.iter().map(|setting| setting.env_name()).chain(NON_SETTING_ENV.iter().map(|name| (*name).to_owned()));
    known
        .map(|candidate| (edit_distance(name, &candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min()
        .map(|(_, candidate)| candidate)
}

/// The Levenshtein distance between two names, counted in bytes.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, a_byte) in a.bytes().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, b_byte) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_byte != *b_byte);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn kubernetes_service_links_are_recognised() {
        for name in [
            "FEDERA_SERVICE_HOST",
            "FEDERA_SERVICE_PORT",
            "FEDERA_SERVICE_PORT_HTTP",
            "FEDERA_PORT",
            "FEDERA_PORT_8080_TCP",
            "FEDERA_PORT_8080_TCP_PROTO",
            "FEDERA_PORT_8080_TCP_PORT",
            "FEDERA_PORT_8080_TCP_ADDR",
            "FEDERA_PORT_53_UDP",
        ] {
            assert!(is_service_link(name), "{name}");
        }
        for name in ["FEDERA_PORTS", "FEDERA_PORT_X_TCP", "FEDERA_PORT_80_TCP_HOST", "FEDERA_SERVICE", "PORT"] {
            assert!(!is_service_link(name), "{name}");
        }
    }

    #[test]
    fn no_setting_looks_like_a_service_link() {
        // A future `[service] host` or `[port]` setting would be shadowed by
        // what Kubernetes sets in every pod.
        for setting in SETTINGS {
            assert!(!is_service_link(&setting.env_name()), "{}", setting.env_name());
        }
    }

    #[test]
    fn typos_suggest_the_nearest_setting() {
        assert_eq!(unknown_variable("FEDERA_SERVER_LISTN"), "unknown setting; did you mean FEDERA_SERVER_LISTEN?");
        assert_eq!(unknown_variable("FEDERA_CONFG"), "unknown setting; did you mean FEDERA_CONFIG?");
        assert_eq!(unknown_variable("FEDERA_NOPE"), "unknown setting");
        assert_eq!(unknown_variable("FEDERA_PORT"), "unknown setting (Kubernetes sets it for a Service named federa)");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}
