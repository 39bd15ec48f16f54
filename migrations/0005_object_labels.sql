-- The labels of every object, one row each, so that a label selector reads an index
-- instead of every document of a kind: `batch=3` walks (kind, key, value) and finds the
-- objects already in (namespace, name) order, the order of a list and its pages. Kept in
-- step with `objects` in the same transaction as every object write and delete.
CREATE TABLE object_labels (
    kind      TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    -- one object's labels (rewritten or dropped with it), and `key` / `!key` on one object
    PRIMARY KEY (kind, namespace, name, key)
) WITHOUT ROWID;
-- `key=value`, `key in (...)` and `key`: the matching objects of a kind, in list order.
CREATE INDEX object_labels_by_label ON object_labels (kind, key, value, namespace, name);

-- The labels of the objects stored before this table existed.
INSERT INTO object_labels (kind, namespace, name, key, value)
SELECT o.kind, o.namespace, o.name, l.key, l.value
FROM objects o, json_each(o.document, '$.metadata.labels') l;
