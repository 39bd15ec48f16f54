-- Objects the controllers deleted by themselves (a Job's ttlSecondsAfterFinished, a
-- Sandbox's expiry) while a file of the watched folder declared them: the folder does
-- not create them again from the same declaration (spec_digest) at a restart.
CREATE TABLE tombstones (
    kind        TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    source      TEXT NOT NULL,
    spec_digest TEXT NOT NULL,
    reason      TEXT NOT NULL,
    deleted_at  INTEGER NOT NULL,
    PRIMARY KEY (kind, namespace, name)
);
