-- 0003: annotation queues and analysts' views. {db} is replaced with the
-- quoted database name. Types limited to those accepted by ClickHouse 18.16
-- and current releases; no ALTER UPDATE: every change is a new row.

-- The queue: one versioned row per status transition of an item (a row of
-- published_instructions). The highest version per item is its status:
-- version = round*4 + rank (queued 0, claimed 1), and a done row has bit 62
-- set, so done is final whatever arrives later. A claimed row whose
-- lease_until has passed reads as queued (the lease expired). These rows are
-- what readers and views use; who holds a lease is decided by
-- annotation_events (sink/queue.go).
CREATE TABLE IF NOT EXISTS {db}.annotation_queue (
    item_id String,
    window_id String,
    cluster Int32,
    status String,
    round UInt32,
    claim_id String,
    annotator String,
    lease_until DateTime,
    version UInt64,
    updated_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(version)
ORDER BY item_id;

-- Append-only log of claims, completions, releases and imports, timestamped
-- by the server (event_at, never the client) so concurrent claimers are
-- ordered by one clock: in each round of an item the earliest claim wins.
-- Plain MergeTree: a merge must never drop the earliest claim.
CREATE TABLE IF NOT EXISTS {db}.annotation_events (
    item_id String,
    round UInt32,
    claim_id String,
    annotator String,
    action String,
    lease_seconds UInt32,
    event_at DateTime DEFAULT now()
) ENGINE = MergeTree
ORDER BY (item_id, round, event_at, claim_id);

-- Imported annotations, one row per (item, annotation id): importing the same
-- file again leaves one row under FINAL. label is the annotation's JSON
-- (Label Studio's result array, or the JSONL label), stored as a String.
CREATE TABLE IF NOT EXISTS {db}.annotations (
    item_id String,
    annotation_id String,
    annotator String,
    label String,
    claim_id String,
    source String,
    imported_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree
ORDER BY (item_id, annotation_id);

-- Analysts' views. Released (DP) instructions per window.
CREATE VIEW IF NOT EXISTS {db}.synthetic_per_window AS
SELECT window_id, group_id, count() AS instructions, max(epsilon) AS epsilon, max(delta) AS delta, min(created_at) AS created_at
FROM {db}.published_instructions
GROUP BY window_id, group_id;

-- Cluster sizes per window.
CREATE VIEW IF NOT EXISTS {db}.cluster_sizes AS
SELECT window_id, cluster, count() AS instructions
FROM {db}.published_instructions
GROUP BY window_id, cluster;

-- Queue progress: items per status, from the latest row of each item, an
-- expired lease counting as queued.
CREATE VIEW IF NOT EXISTS {db}.annotation_progress AS
SELECT if(last_status = 'claimed' AND last_lease <= now(), 'queued', last_status) AS status, count() AS items
FROM
(
    SELECT item_id, argMax(status, version) AS last_status, argMax(lease_until, version) AS last_lease
    FROM {db}.annotation_queue
    GROUP BY item_id
)
GROUP BY status;
