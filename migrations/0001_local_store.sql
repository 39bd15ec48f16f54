-- The local store: objects with a global revision, events, and run records.

-- One global, monotonically increasing revision (like etcd's): every object write takes
-- the next value, and it is kept here so that it survives restarts and deletions.
CREATE TABLE store_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO store_revision (id, revision) VALUES (1, 0);

-- Each object as its JSON document; the columns repeat what lookups and the
-- uniqueness of (kind, namespace, name) need. Cluster-scoped kinds use namespace ''.
CREATE TABLE objects (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL,
    namespace        TEXT NOT NULL,
    name             TEXT NOT NULL,
    uid              TEXT NOT NULL UNIQUE,
    resource_version INTEGER NOT NULL,
    document         TEXT NOT NULL,
    UNIQUE (kind, namespace, name)
);

-- Kubernetes-style events, aggregated: a repeat adds to count. Times are microseconds
-- since the epoch so that they sort as numbers.
CREATE TABLE events (
    id                 INTEGER PRIMARY KEY,
    involved_kind      TEXT NOT NULL,
    involved_namespace TEXT NOT NULL,
    involved_name      TEXT NOT NULL,
    involved_uid       TEXT NOT NULL,
    type               TEXT NOT NULL,
    reason             TEXT NOT NULL,
    message            TEXT NOT NULL,
    count              INTEGER NOT NULL,
    first_timestamp    INTEGER NOT NULL,
    last_timestamp     INTEGER NOT NULL,
    UNIQUE (involved_kind, involved_namespace, involved_name, involved_uid, type, reason, message)
);
CREATE INDEX events_by_time ON events (last_timestamp);

-- Run records outlive their object, so nothing here refers to the objects table.
CREATE TABLE runs (
    uid       TEXT NOT NULL,
    run       INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    -- completion time, else start time (microseconds since the epoch); orders runs()
    sort_time INTEGER,
    document  TEXT NOT NULL,
    PRIMARY KEY (uid, run)
);
CREATE INDEX runs_by_name ON runs (namespace, name);

CREATE TABLE attempts (
    uid      TEXT NOT NULL,
    run      INTEGER NOT NULL,
    attempt  INTEGER NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (uid, run, attempt)
);
