-- Secrets (the core v1 Secret of local mode), kept apart from `objects` so that the
-- lists, watches, labels and searches of every other kind never carry them.
-- `sealed` is the whole Secret (metadata, type, data) as JSON, encrypted with
-- XChaCha20-Poly1305 under <data-dir>/secrets.key with the random `nonce`; the namespace
-- and name are the associated data, so a sealed row moved to another name does not open.
-- Only the namespace, name, uid and versions are in clear.
CREATE TABLE secrets (
    namespace        TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    uid              TEXT    NOT NULL,
    resource_version INTEGER NOT NULL,
    nonce            BLOB    NOT NULL,
    sealed           BLOB    NOT NULL,
    PRIMARY KEY (namespace, name)
);

-- The resourceVersions of secrets, a sequence of their own: the store's revision is
-- the watch history's, and secrets are not in the watch.
CREATE TABLE secret_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO secret_revision (id, revision) VALUES (1, 0);
