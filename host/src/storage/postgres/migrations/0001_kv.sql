-- Connectors' kv spaces, shared by every node: one row per key, and each
-- plugin's bytes in use beside them, so that a write checks and moves the
-- quota in one transaction whichever node it lands on.
-- Keys are bytes, as in sled: any string a connector names (NUL included)
-- is stored, and keys sort bytewise.
CREATE TABLE kv (
    plugin text  NOT NULL,
    key    bytea NOT NULL,
    value  bytea NOT NULL,
    PRIMARY KEY (plugin, key)
);

CREATE TABLE kv_usage (
    plugin text   PRIMARY KEY,
    -- Bytes of keys plus values stored (the quota's measure).
    used   bigint NOT NULL DEFAULT 0 CHECK (used >= 0)
);
