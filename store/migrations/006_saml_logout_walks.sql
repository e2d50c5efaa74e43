-- SAML single logout walks (issue #6): the server-side state of one front-channel logout across the SPs a session
-- had signed in to. The browser carries only a random state token (as RelayState and in /saml/slo/next?state=);
-- its SHA-256 keys this row and the marked saml_sp_sessions rows (logout_state). A walk is bounded in time
-- (expires_at); expired walks are purged when a new one starts.
--
-- For a walk that an SP's LogoutRequest started (SP-initiated), the row keeps what the final LogoutResponse to
-- that SP needs: the SP, the binding and the received message (replayed through lasso at the end, so the answer
-- carries InResponseTo and goes to the SP's own response location), its RelayState, lasso's record of the SP's
-- assertion, and browser_hash, the SHA-256 of a random value in a short-lived cookie set when the walk started:
-- only that browser can continue the walk and receive the answer. partial is set when another SP could not be
-- told or answered with an error status (the answer is then Success/PartialLogout). /logout's walks have none of
-- these (initiator IS NULL) and end on portier's own page.
CREATE TABLE saml_logout_walks (
    state_hash    bytea PRIMARY KEY CHECK (length(state_hash) = 32),
    initiator     text,
    binding       text CHECK (binding IN ('redirect', 'post')),
    message       text,
    relay_state   text,
    lasso_session text,
    browser_hash  bytea CHECK (browser_hash IS NULL OR length(browser_hash) = 32),
    partial       boolean NOT NULL DEFAULT false,
    expires_at    timestamptz NOT NULL,
    CHECK (initiator IS NULL OR (binding IS NOT NULL AND message IS NOT NULL AND lasso_session IS NOT NULL
                                 AND browser_hash IS NOT NULL))
);
CREATE INDEX saml_logout_walks_expiry ON saml_logout_walks (expires_at);
