-- The audit trail, shared by every node: each record whole (as JSON), and
-- beside it the fields the API filters on, indexed with the id so that a
-- search by session, tool, outcome, token, approval or run reads only its
-- own records, newest first. Ids are time-ordered, so a time range is an id
-- range on the primary key.
CREATE TABLE audit (
    id       bigint  PRIMARY KEY,
    record   jsonb   NOT NULL,
    tool     text    NOT NULL,
    outcome  text    NOT NULL,
    via      text    NOT NULL,
    session  text,
    token    text,
    approval text,
    run      text,
    -- The node that wrote it, and whether its call is still in flight
    -- there: a node closes only its own cut-short calls when it starts.
    node     text    NOT NULL,
    running  boolean NOT NULL DEFAULT false
);

CREATE INDEX audit_by_session  ON audit (session, id)  WHERE session IS NOT NULL;
CREATE INDEX audit_by_tool     ON audit (tool, id);
CREATE INDEX audit_by_outcome  ON audit (outcome, id);
CREATE INDEX audit_by_token    ON audit (token, id)    WHERE token IS NOT NULL;
CREATE INDEX audit_by_approval ON audit (approval, id) WHERE approval IS NOT NULL;
CREATE INDEX audit_by_run      ON audit (run, id)      WHERE run IS NOT NULL;
CREATE INDEX audit_running     ON audit (node, id)     WHERE running;
