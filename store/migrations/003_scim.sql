-- SCIM 2.0 provisioning (issue #5): the attributes a SCIM client manages, group metadata for ETags, and the
-- bearer tokens of SCIM clients. users.disabled stays the one source of truth for SCIM's `active`.

-- Every SCIM User attribute that has no column of its own (name.*, emails, phoneNumbers, addresses, title,
-- the enterprise extension, ...) as the client sent it, normalised. userName, externalId, active, id and
-- meta come from columns; password is never stored here; groups come from group_members.
ALTER TABLE users ADD COLUMN scim jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(scim) = 'object');
CREATE INDEX users_external_id ON users (external_id);
CREATE INDEX users_primary_email ON users (lower(email));

ALTER TABLE groups ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE groups ADD COLUMN version bigint NOT NULL DEFAULT 1;
CREATE INDEX groups_external_id ON groups (external_id);

-- Bearer tokens of SCIM clients: only the SHA-256 of the token is kept. A revoked token stays listed.
CREATE TABLE scim_tokens (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),
    hash         bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    last_used_at timestamptz
);
