-- portier schema, version 1: users, groups, credentials, sessions, one-time tokens, throttling, audit trail.
-- Applied by `portier migrate` inside one transaction.

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL CHECK (length(username) BETWEEN 1 AND 256),
    email         text,
    display_name  text,
    disabled      boolean NOT NULL DEFAULT false,
    failed_logins integer NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    external_id   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    version       bigint NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

CREATE TABLE groups (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    external_id text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX groups_name_lower ON groups (lower(name));

CREATE TABLE group_members (
    group_id bigint NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE password_credentials (
    user_id    bigint PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    hash       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    id_hash      bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    public_id    text NOT NULL UNIQUE,
    user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    idle_timeout integer NOT NULL CHECK (idle_timeout > 0),
    auth_methods text[] NOT NULL DEFAULT '{pwd}',
    source_addr  text
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE one_time_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
CREATE INDEX one_time_tokens_user ON one_time_tokens (user_id, purpose);

CREATE TABLE throttle_counters (
    key          text PRIMARY KEY,
    count        integer NOT NULL DEFAULT 0,
    window_start timestamptz NOT NULL DEFAULT now(),
    locked_until timestamptz
);

-- The audit trail is append-only: rows can be inserted and read, never changed or removed. The triggers hold
-- for every role, the table owner included (only a superuser or the owner can drop or disable them, which is a
-- DDL change, itself visible); the REVOKE keeps other roles from even trying. Each row's mac covers the
-- previous row's mac (keyed hash chain computed by portier with a key kept outside the database; the
-- canonical text is described in store/audit.c). Rows are inserted with explicit id and at, see store/audit.c.
CREATE TABLE audit_events (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text NOT NULL,
    action      text NOT NULL,
    target      text,
    outcome     text,
    source_addr text,
    request_id  text,
    details     jsonb CHECK (details IS NULL OR jsonb_typeof(details) = 'object'),
    prev_mac    bytea CHECK (prev_mac IS NULL OR length(prev_mac) = 32),
    mac         bytea CHECK (mac IS NULL OR length(mac) = 32)
);

CREATE FUNCTION audit_events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_immutable();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_immutable();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM PUBLIC;
