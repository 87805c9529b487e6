//! Client roles: the few roles of built-in clients that Federa gives a
//! meaning to. Keycloak creates a `broker` client in every realm with the
//! role `read-token`, which lets a user read their stored upstream tokens
//! (`GET /realms/{r}/broker/{alias}/token`). Federa keeps users' client-role
//! grants by (clientId, role name) and knows only that one role; there is no
//! `broker` client row, so the realm's client list stays what the admin made.

/// The clientId of Keycloak's built-in broker client.
pub const BROKER_CLIENT: &str = "broker";
/// The broker client's role that opens the stored upstream tokens.
pub const READ_TOKEN: &str = "read-token";

/// Whether Federa knows a client role (and so stores grants of it).
pub fn is_known(client_id: &str, role: &str) -> bool {
    client_id == BROKER_CLIENT && role == READ_TOKEN
}

/// The known roles of a client, as Keycloak's RoleRepresentation names them.
pub fn roles_of(client_id: &str) -> &'static [&'static str] {
    if client_id == BROKER_CLIENT {
        &[READ_TOKEN]
    } else {
        &[]
    }
}
