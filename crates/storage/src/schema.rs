//! The diesel schema, the same for SQLite and PostgreSQL (the migrations under
//! `migrations/` create it on each).

diesel::table! {
    realms (id) {
        id -> Text,
        name -> Text,
        repr -> Text,
        managed_by -> Nullable<Text>,
        source_digest -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    clients (id) {
        id -> Text,
        realm_id -> Text,
        client_id -> Text,
        repr -> Text,
        secret_enc -> Nullable<Text>,
    }
}

diesel::table! {
    identity_providers (id) {
        id -> Text,
        realm_id -> Text,
        alias -> Text,
        repr -> Text,
        client_secret_enc -> Nullable<Text>,
    }
}

diesel::table! {
    idp_mappers (id) {
        id -> Text,
        realm_id -> Text,
        idp_alias -> Text,
        name -> Text,
        repr -> Text,
    }
}

diesel::table! {
    realm_roles (id) {
        id -> Text,
        realm_id -> Text,
        name -> Text,
        description -> Nullable<Text>,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        realm_id -> Text,
        username -> Text,
        email -> Nullable<Text>,
        email_verified -> Bool,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        enabled -> Bool,
        created_timestamp -> BigInt,
        attributes -> Text,
    }
}

diesel::table! {
    user_role_mappings (user_id, role_id) {
        user_id -> Text,
        role_id -> Text,
    }
}

diesel::table! {
    federated_identities (user_id, idp_alias) {
        user_id -> Text,
        realm_id -> Text,
        idp_alias -> Text,
        upstream_subject -> Text,
        upstream_username -> Nullable<Text>,
        token_enc -> Nullable<Text>,
    }
}

diesel::table! {
    user_client_roles (user_id, client_id, role_name) {
        user_id -> Text,
        realm_id -> Text,
        client_id -> Text,
        role_name -> Text,
    }
}

diesel::table! {
    realm_keys (kid) {
        kid -> Text,
        realm_id -> Text,
        alg -> Text,
        private_enc -> Text,
        public_jwk -> Text,
        created_at -> BigInt,
        active -> Bool,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        realm_name -> Nullable<Text>,
        kind -> Text,
        resource -> Text,
        details -> Text,
        occurred_at -> BigInt,
    }
}

diesel::table! {
    session_entries (key) {
        key -> Text,
        value -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    session_index (key, member) {
        key -> Text,
        member -> Text,
        expires_at -> BigInt,
    }
}

diesel::joinable!(user_role_mappings -> realm_roles (role_id));
diesel::joinable!(user_role_mappings -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    realms,
    clients,
    identity_providers,
    idp_mappers,
    realm_roles,
    users,
    user_role_mappings,
    federated_identities,
    user_client_roles,
    realm_keys,
    audit_events,
    session_entries,
    session_index,
);
