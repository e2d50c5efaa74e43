-- SAML identity provider (issue #6).
--
-- saml_request_ids: the replay cache of AuthnRequest IDs per SP. A row lives until its expiry (well past the
-- time a request is accepted for), survives restarts, and is shared by every instance.
CREATE TABLE saml_request_ids (
    sp          text NOT NULL,
    request_id  text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (sp, request_id)
);
CREATE INDEX saml_request_ids_expiry ON saml_request_ids (expires_at);

-- saml_pending: an AuthnRequest waiting for the user to sign in (the browser comes back with the random state
-- token; only its SHA-256 is stored). Single use: the row is deleted when the response is issued.
CREATE TABLE saml_pending (
    id_hash     bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    sp          text NOT NULL,
    binding     text NOT NULL CHECK (binding IN ('redirect', 'post')),
    message     text NOT NULL,
    relay_state text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX saml_pending_expiry ON saml_pending (expires_at);

-- saml_sp_sessions: which SPs a portier session has signed in to, with the NameID, the SessionIndex and lasso's
-- session dump (the assertion as issued), so that single logout can be validated and propagated. Rows outlive the
-- portier session on purpose: /logout marks them with a logout state and then walks them one SP at a time. Rows
-- older than the longest possible session are purged.
CREATE TABLE saml_sp_sessions (
    session_hash   bytea NOT NULL CHECK (length(session_hash) = 32),
    sp             text NOT NULL,
    name_id        text NOT NULL,
    name_id_format text NOT NULL,
    session_index  text NOT NULL,
    lasso_session  text NOT NULL,
    logout_state   bytea CHECK (logout_state IS NULL OR length(logout_state) = 32),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_hash, sp)
);
CREATE INDEX saml_sp_sessions_name_id ON saml_sp_sessions (sp, name_id);
CREATE INDEX saml_sp_sessions_logout ON saml_sp_sessions (logout_state) WHERE logout_state IS NOT NULL;
