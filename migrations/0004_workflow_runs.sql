-- One row per run of a Workflow: its phase, trigger, inputs and every node (a matrix of
-- 500 is 500 entries), which the Workflow's own status keeps only for the current run.
CREATE TABLE workflow_runs (
    uid       TEXT NOT NULL,
    run       INTEGER NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    -- completion time, else start time (microseconds since the epoch); orders workflow_runs()
    sort_time INTEGER,
    document  TEXT NOT NULL,
    PRIMARY KEY (uid, run)
);
CREATE INDEX workflow_runs_by_name ON workflow_runs (namespace, name);
