-- SAML service provider / broker (issue #7): enterprise IdPs sign users in to portier.
--
-- saml_sp_identities: an external identity (connection's IdP entityID + NameID) linked to a portier user. Written
-- at the first successful login of that identity; later logins find the user by it alone.
CREATE TABLE saml_sp_identities (
    idp        text NOT NULL,
    name_id    text NOT NULL CHECK (length(name_id) BETWEEN 1 AND 1024),
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_login timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (idp, name_id)
);
CREATE INDEX saml_sp_identities_user ON saml_sp_identities (user_id);

-- saml_sp_assertions: the replay cache of assertion IDs per IdP, kept until the assertion's NotOnOrAfter (plus
-- the clock skew). In PostgreSQL, so it survives restarts and every instance shares it.
CREATE TABLE saml_sp_assertions (
    idp          text NOT NULL,
    assertion_id text NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (idp, assertion_id)
);
CREATE INDEX saml_sp_assertions_expiry ON saml_sp_assertions (expires_at);

-- saml_sp_requests: AuthnRequests we sent and have not seen answered. The ACS POST arrives cross-site, so it is
-- keyed by the SHA-256 of a random state that travels as RelayState; browser_hash is the SHA-256 of a random
-- value in a short-lived SameSite=None cookie set when the request was sent, so only the browser that started
-- the sign-in can finish it. Single use: the row is deleted when a response for it is checked.
CREATE TABLE saml_sp_requests (
    state_hash   bytea PRIMARY KEY CHECK (length(state_hash) = 32),
    browser_hash bytea NOT NULL CHECK (length(browser_hash) = 32),
    request_id   text NOT NULL,
    idp          text NOT NULL,
    return_to    text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
CREATE INDEX saml_sp_requests_expiry ON saml_sp_requests (expires_at);

-- saml_sp_logins: which portier session an enterprise IdP's assertion opened (NameID and SessionIndex), so that a
-- LogoutRequest from that IdP ends exactly those sessions. Goes with the session.
CREATE TABLE saml_sp_logins (
    session_hash  bytea PRIMARY KEY REFERENCES sessions (id_hash) ON DELETE CASCADE,
    idp           text NOT NULL,
    name_id       text NOT NULL,
    name_id_format text,
    session_index text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX saml_sp_logins_subject ON saml_sp_logins (idp, name_id);

-- saml_sp_logouts: a LogoutRequest portier sent to an enterprise IdP when the user signed out (SP-initiated single
-- logout), keyed by the hash of the RelayState it carries; `next` is where the browser goes once the IdP answers
-- (portier's own SP logout walk, or the sign-in page). Single use.
CREATE TABLE saml_sp_logouts (
    state_hash bytea PRIMARY KEY CHECK (length(state_hash) = 32),
    request_id text NOT NULL,
    idp        text NOT NULL,
    next       text NOT NULL,
    expires_at timestamptz NOT NULL
);
