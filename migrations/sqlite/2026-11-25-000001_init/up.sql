-- Federa's schema. Configuration objects keep Keycloak's representation as
-- JSON text beside the columns that are looked up or must be unique; secrets
-- and private keys live only in *_enc columns, encrypted with the master key.
CREATE TABLE realms (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    repr TEXT NOT NULL,
    managed_by TEXT,
    source_digest TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE clients (
    id TEXT PRIMARY KEY NOT NULL,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    repr TEXT NOT NULL,
    secret_enc TEXT,
    UNIQUE (realm_id, client_id)
);

CREATE TABLE identity_providers (
    id TEXT PRIMARY KEY NOT NULL,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    alias TEXT NOT NULL,
    repr TEXT NOT NULL,
    client_secret_enc TEXT,
    UNIQUE (realm_id, alias)
);

CREATE TABLE idp_mappers (
    id TEXT PRIMARY KEY NOT NULL,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    idp_alias TEXT NOT NULL,
    name TEXT NOT NULL,
    repr TEXT NOT NULL,
    UNIQUE (realm_id, idp_alias, name)
);

CREATE TABLE realm_roles (
    id TEXT PRIMARY KEY NOT NULL,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT,
    UNIQUE (realm_id, name)
);

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    username TEXT NOT NULL,
    email TEXT,
    email_verified BOOLEAN NOT NULL,
    first_name TEXT,
    last_name TEXT,
    enabled BOOLEAN NOT NULL,
    created_timestamp BIGINT NOT NULL,
    attributes TEXT NOT NULL,
    UNIQUE (realm_id, username)
);
CREATE INDEX users_realm_email ON users (realm_id, email);

CREATE TABLE user_role_mappings (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id TEXT NOT NULL REFERENCES realm_roles(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);

CREATE TABLE federated_identities (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    idp_alias TEXT NOT NULL,
    upstream_subject TEXT NOT NULL,
    upstream_username TEXT,
    token_enc TEXT,
    PRIMARY KEY (user_id, idp_alias),
    UNIQUE (realm_id, idp_alias, upstream_subject)
);

CREATE TABLE realm_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    alg TEXT NOT NULL,
    private_enc TEXT NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    active BOOLEAN NOT NULL
);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    realm_name TEXT,
    kind TEXT NOT NULL,
    resource TEXT NOT NULL,
    details TEXT NOT NULL,
    occurred_at BIGINT NOT NULL
);
CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);

CREATE TABLE session_entries (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX session_entries_expires_at ON session_entries (expires_at);
