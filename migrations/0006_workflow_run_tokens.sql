-- The re-run token that started a Workflow run (`run-<Idempotency-Key>` for
-- `POST .../runs`), so that a retried request finds its run once the Workflow's status
-- history (the last 10 runs) no longer holds it.
ALTER TABLE workflow_runs ADD COLUMN token TEXT;
CREATE INDEX workflow_runs_by_token ON workflow_runs (uid, token) WHERE token IS NOT NULL;
