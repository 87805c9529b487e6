DROP TABLE user_client_roles;
