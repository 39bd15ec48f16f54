-- The text `orcaops history --all --grep` searches: per Job run, its summary, the
-- error lines picked out of its steps and each step's output tail (the last lines), at
-- most 32 KiB (the store cuts it), kept with the run record in the same transaction.
-- FTS5 (SQLite's full-text index, built into the bundled SQLite) tokenises it into
-- words, so a search is for words and phrases, not arbitrary substrings.
CREATE VIRTUAL TABLE run_text USING fts5 (
    text,
    uid UNINDEXED,
    run UNINDEXED,
    tokenize = 'unicode61'
);

-- The runs recorded before this table existed.
INSERT INTO run_text (text, uid, run)
SELECT substr(
           coalesce(json_extract(r.document, '$.summary'), '') || char(10) ||
           coalesce((SELECT group_concat(json_extract(e.value, '$.text'), char(10))
                     FROM json_each(r.document, '$.steps') s, json_each(s.value, '$.errors') e), '') ||
           char(10) ||
           coalesce((SELECT group_concat(json_extract(s.value, '$.outputTail'), char(10))
                     FROM json_each(r.document, '$.steps') s), ''),
           1, 32768),
       r.uid, r.run
FROM runs r;

-- A workflow node's runs, across the workflow's runs (each run's node has a Job of its
-- own name): the baseline its anomalies are judged against. The expressions are those
-- LocalStore::node_runs queries with, so that SQLite uses this index.
CREATE INDEX runs_by_workflow_node ON runs (
    namespace,
    json_extract(document, '$.context.labels."orcaops.dev/workflow"'),
    json_extract(document, '$.context.labels."orcaops.dev/node"')
);
