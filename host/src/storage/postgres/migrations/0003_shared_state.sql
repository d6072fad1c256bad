-- Everything else nodes share: who the nodes are, idempotency answers and
-- claims, the operator's decisions, version histories, held calls and
-- workflow runs.

-- Each node's name and a small number of its own, which it puts in the low
-- bits of the audit ids it makes, so that two nodes never make the same id.
CREATE TABLE nodes (
    name       text        PRIMARY KEY,
    slot       smallint    NOT NULL UNIQUE CHECK (slot BETWEEN 0 AND 255),
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);

-- An `Idempotency-Key`'s answer, or, while `answer` is null, the claim of
-- the node whose first call runs now (until `claimed_until`, Unix ms; past
-- it, a node that died holding it no longer blocks a retry).
CREATE TABLE idempotency (
    principal     text   NOT NULL,
    tool          text   NOT NULL,
    key           text   NOT NULL,
    answer        jsonb,
    -- When the answer was stored, Unix seconds.
    at            bigint NOT NULL DEFAULT 0,
    claimed_by    text,
    claimed_until bigint,
    PRIMARY KEY (principal, tool, key)
);
CREATE INDEX idempotency_by_age ON idempotency (at) WHERE answer IS NOT NULL;

-- Grants set through the API (as `PluginPolicy::stored` writes them,
-- secrets' values included: as sensitive as the policy file).
CREATE TABLE grants (
    plugin text  PRIMARY KEY,
    grant_ jsonb NOT NULL
);

CREATE TABLE disabled (
    plugin text PRIMARY KEY
);

-- One row per setting (the approval rules set through the API).
CREATE TABLE settings (
    name  text  PRIMARY KEY,
    value jsonb NOT NULL
);

-- Which versions each plugin has served, oldest first.
CREATE TABLE history (
    plugin   text  PRIMARY KEY,
    versions jsonb NOT NULL
);

-- Archived bundles' files, by archive name (plugin/digests), so that a node
-- serves a version uploaded to another, and a node started later finds
-- every version it may be asked to roll back to.
CREATE TABLE bundles (
    archive  text    PRIMARY KEY,
    names    text[]  NOT NULL,
    contents bytea[] NOT NULL
);

-- Held calls. `state` and `decisions` mirror the record, so that a change
-- applies only to the approval as the node that makes it last saw it (a
-- decision on one node and an execution on another cannot both win).
CREATE TABLE approvals (
    id        text     PRIMARY KEY,
    record    jsonb    NOT NULL,
    state     text     NOT NULL,
    decisions smallint NOT NULL,
    open      boolean  NOT NULL
);
CREATE INDEX approvals_open ON approvals (id) WHERE open;

-- Workflow runs, and the lease of the node driving each open one: another
-- node takes over a run whose lease ran out (its node died).
CREATE TABLE runs (
    id          text    PRIMARY KEY,
    record      jsonb   NOT NULL,
    open        boolean NOT NULL,
    leased_by   text,
    lease_until bigint
);
CREATE INDEX runs_open ON runs (id) WHERE open;

CREATE TABLE run_steps (
    run  text    NOT NULL,
    seq  integer NOT NULL,
    step jsonb   NOT NULL,
    PRIMARY KEY (run, seq)
);
