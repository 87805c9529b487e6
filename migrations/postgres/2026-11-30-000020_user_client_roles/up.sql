-- A user's client roles (Keycloak's client-level role mappings), by the
-- client's clientId and the role's name: today the `broker` client's
-- `read-token`, which opens GET /realms/{r}/broker/{alias}/token.
CREATE TABLE user_client_roles (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    realm_id TEXT NOT NULL REFERENCES realms(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    role_name TEXT NOT NULL,
    PRIMARY KEY (user_id, client_id, role_name)
);
CREATE INDEX user_client_roles_realm ON user_client_roles (realm_id);
