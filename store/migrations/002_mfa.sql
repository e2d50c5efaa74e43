-- portier schema, version 2: second factors (TOTP/HOTP), recovery codes, and the half-authenticated state
-- between the password and the second factor.

-- An OTP secret is stored sealed (AES-256-GCM under a key kept outside the database, the user id as associated
-- data): a dump of this table reveals no secret, and a sealed secret copied to another user does not open.
-- A user has at most one confirmed factor; a pending one (confirmed_at NULL) lives until it is proven with a
-- code, replaced by a newer pending one, or removed.
CREATE TABLE mfa_factors (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('totp', 'hotp')),
    secret_sealed bytea NOT NULL,
    algorithm     text NOT NULL DEFAULT 'SHA1' CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
    digits        integer NOT NULL DEFAULT 6 CHECK (digits BETWEEN 6 AND 8),
    period        integer NOT NULL DEFAULT 30 CHECK (period > 0),
    -- TOTP: the last accepted time step (each code is accepted once); HOTP: the next counter expected
    last_step     bigint NOT NULL DEFAULT -1,
    counter       bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    confirmed_at  timestamptz
);
CREATE UNIQUE INDEX mfa_factors_confirmed ON mfa_factors (user_id) WHERE confirmed_at IS NOT NULL;
CREATE UNIQUE INDEX mfa_factors_pending ON mfa_factors (user_id) WHERE confirmed_at IS NULL;

-- Recovery codes: only the SHA-256 of each code; a used code keeps its row (used_at) so reuse is refused.
CREATE TABLE mfa_recovery_codes (
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL CHECK (length(code_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- Half-authenticated state: the password was right, the second factor (or its enrolment) is still due. Keyed by
-- the SHA-256 of a browser cookie; grants nothing but the MFA pages, for a few minutes and a few attempts.
CREATE TABLE mfa_challenges (
    id_hash    bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('verify', 'enrol')),
    return_to  text NOT NULL,
    attempts   integer NOT NULL DEFAULT 0,
    expires_at timestamptz NOT NULL
);
CREATE INDEX mfa_challenges_user ON mfa_challenges (user_id);
