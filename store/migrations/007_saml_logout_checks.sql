-- Single logout, follow-up (issue #6): every logout walk is bound to the browser that started it, /logout's own walks
-- too (they had no browser_hash: anyone holding the state could continue them). Walks from before this version are
-- dropped with the SP sign-ins they held: their portier sessions ended already, those SPs are just not told.
DELETE FROM saml_sp_sessions
 WHERE logout_state IN (SELECT state_hash FROM saml_logout_walks WHERE browser_hash IS NULL);
DELETE FROM saml_logout_walks WHERE browser_hash IS NULL;
ALTER TABLE saml_logout_walks ALTER COLUMN browser_hash SET NOT NULL;

-- An SP's LogoutRequest names its sign-in by SessionIndex; its NameID is then checked against the one issued.
CREATE INDEX saml_sp_sessions_session_index ON saml_sp_sessions (sp, session_index);
