-- Secondary indexes of the SSO sessions (by user, by upstream sid and sub,
-- the clients a session served): one row per (set, member).
CREATE TABLE session_index (
    key TEXT NOT NULL,
    member TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (key, member)
);
CREATE INDEX session_index_expires_at ON session_index (expires_at);
