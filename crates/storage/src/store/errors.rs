//! Diesel's errors as the broker's. A refused write becomes a conflict that
//! names the rule it broke: PostgreSQL names the constraint
//! (`users_realm_id_username_key`), SQLite names the table and columns in its
//! message (`UNIQUE constraint failed: users.realm_id, users.username`); both
//! are matched against the one list of rules below, written from the
//! migrations.

use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error as DieselError};
use federa_broker::store::Entity;
use federa_broker::{Conflict, ConflictKind, StoreError, UniqueKey};

/// A unique key or primary key of the schema.
struct Rule {
    key: UniqueKey,
    table: &'static str,
    columns: &'static [&'static str],
    primary: bool,
}

const fn unique(key: UniqueKey, table: &'static str, columns: &'static [&'static str]) -> Rule {
    Rule { key, table, columns, primary: false }
}

const fn primary(key: UniqueKey, table: &'static str, columns: &'static [&'static str]) -> Rule {
    Rule { key, table, columns, primary: true }
}

/// Every uniqueness rule of migrations/{sqlite,postgres}.
const RULES: &[Rule] = &[
    primary(UniqueKey::Id(Entity::Realm), "realms", &["id"]),
    unique(UniqueKey::RealmName, "realms", &["name"]),
    primary(UniqueKey::Id(Entity::Client), "clients", &["id"]),
    unique(UniqueKey::ClientId, "clients", &["realm_id", "client_id"]),
    primary(UniqueKey::Id(Entity::IdentityProvider), "identity_providers", &["id"]),
    unique(UniqueKey::IdpAlias, "identity_providers", &["realm_id", "alias"]),
    primary(UniqueKey::Id(Entity::Mapper), "idp_mappers", &["id"]),
    unique(UniqueKey::MapperName, "idp_mappers", &["realm_id", "idp_alias", "name"]),
    primary(UniqueKey::Id(Entity::Role), "realm_roles", &["id"]),
    unique(UniqueKey::RoleName, "realm_roles", &["realm_id", "name"]),
    primary(UniqueKey::Id(Entity::User), "users", &["id"]),
    unique(UniqueKey::Username, "users", &["realm_id", "username"]),
    primary(UniqueKey::RoleGrant, "user_role_mappings", &["user_id", "role_id"]),
    primary(UniqueKey::UserLink, "federated_identities", &["user_id", "idp_alias"]),
    unique(UniqueKey::FederatedLink, "federated_identities", &["realm_id", "idp_alias", "upstream_subject"]),
    primary(UniqueKey::Id(Entity::SigningKey), "realm_keys", &["kid"]),
    primary(UniqueKey::Id(Entity::AuditEvent), "audit_events", &["id"]),
];

impl Rule {
    /// PostgreSQL's default name for the constraint: `{table}_pkey` for a
    /// primary key, `{table}_{columns}_key` for a unique one.
    fn is_postgres_constraint(&self, name: &str) -> bool {
        let Some(rest) = name.strip_prefix(self.table).and_then(|r| r.strip_prefix('_')) else {
            return false;
        };
        if self.primary {
            return rest == "pkey";
        }
        let mut rest = rest;
        for column in self.columns {
            match rest.strip_prefix(column).and_then(|r| r.strip_prefix('_')) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        rest == "key"
    }

    /// SQLite's `table.column` list, in the order of the constraint.
    fn is_sqlite_columns(&self, failed: &str) -> bool {
        let mut named = failed.split(", ").map(|tc| tc.split_once('.'));
        let all_match = self.columns.iter().all(|column| named.next() == Some(Some((self.table, column))));
        all_match && named.next().is_none()
    }
}

/// The rule a unique violation broke.
fn unique_key(info: &dyn DatabaseErrorInformation) -> UniqueKey {
    let rule = match info.constraint_name() {
        Some(name) => RULES.iter().find(|r| r.is_postgres_constraint(name)),
        None => info
            .message()
            .strip_prefix("UNIQUE constraint failed: ")
            .and_then(|failed| RULES.iter().find(|r| r.is_sqlite_columns(failed))),
    };
    rule.map_or(UniqueKey::Unrecognised, |r| r.key)
}

/// Maps diesel's errors to the broker's: uniqueness and foreign keys become
/// conflicts naming what collided, everything else a backend failure.
pub(super) fn db_err(e: DieselError) -> StoreError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            StoreError::Conflict(Conflict::new(ConflictKind::Unique(unique_key(info.as_ref())), info.message()))
        }
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, info) => {
            StoreError::Conflict(Conflict::new(ConflictKind::ForeignKey, info.message()))
        }
        DieselError::NotFound => StoreError::NotFound("not found".into()),
        other => StoreError::Backend(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Diesel's error information, as a backend would fill it.
    struct Info {
        message: &'static str,
        constraint: Option<&'static str>,
    }

    impl DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.message
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            self.constraint
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn postgres(constraint: &'static str) -> UniqueKey {
        unique_key(&Info { message: "duplicate key value violates unique constraint", constraint: Some(constraint) })
    }

    fn sqlite(message: &'static str) -> UniqueKey {
        unique_key(&Info { message, constraint: None })
    }

    #[test]
    fn postgres_constraint_names_map_to_rules() {
        assert_eq!(postgres("users_realm_id_username_key"), UniqueKey::Username);
        assert_eq!(postgres("users_pkey"), UniqueKey::Id(Entity::User));
        assert_eq!(postgres("realms_name_key"), UniqueKey::RealmName);
        assert_eq!(postgres("federated_identities_realm_id_idp_alias_upstream_subject_key"), UniqueKey::FederatedLink);
        assert_eq!(postgres("federated_identities_pkey"), UniqueKey::UserLink);
        assert_eq!(postgres("users_realm_id_key"), UniqueKey::Unrecognised);
        assert_eq!(postgres("users_realm_id_username_email_key"), UniqueKey::Unrecognised);
    }

    #[test]
    fn sqlite_messages_map_to_rules() {
        assert_eq!(sqlite("UNIQUE constraint failed: users.realm_id, users.username"), UniqueKey::Username);
        assert_eq!(sqlite("UNIQUE constraint failed: clients.id"), UniqueKey::Id(Entity::Client));
        assert_eq!(
            sqlite("UNIQUE constraint failed: idp_mappers.realm_id, idp_mappers.idp_alias, idp_mappers.name"),
            UniqueKey::MapperName
        );
        assert_eq!(sqlite("UNIQUE constraint failed: users.realm_id"), UniqueKey::Unrecognised);
        assert_eq!(
            sqlite("UNIQUE constraint failed: users.realm_id, users.username, users.email"),
            UniqueKey::Unrecognised
        );
        assert_eq!(sqlite("something else entirely"), UniqueKey::Unrecognised);
    }

    #[test]
    fn every_rule_is_found_by_both_backends() {
        for rule in RULES {
            let pg = if rule.primary {
                format!("{}_pkey", rule.table)
            } else {
                format!("{}_{}_key", rule.table, rule.columns.join("_"))
            };
            assert!(pg.len() <= 63, "PostgreSQL truncates {pg}");
            assert!(rule.is_postgres_constraint(&pg), "{pg}");
            let sqlite: Vec<String> = rule.columns.iter().map(|c| format!("{}.{c}", rule.table)).collect();
            assert!(rule.is_sqlite_columns(&sqlite.join(", ")), "{sqlite:?}");
            let found = RULES.iter().find(|r| r.is_postgres_constraint(&pg)).map(|r| r.key);
            assert_eq!(found, Some(rule.key), "{pg} is taken by an earlier rule");
        }
    }
}
