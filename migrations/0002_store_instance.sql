-- A random identity for this store, made once. Containers carry it as the label
-- orcaops.dev/instance, so that one orcaops only ever cleans up its own containers
-- when several share a Docker daemon.
CREATE TABLE store_instance (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    instance TEXT NOT NULL
);
INSERT INTO store_instance (id, instance) VALUES (1, lower(hex(randomblob(8))));
