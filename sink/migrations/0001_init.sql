-- 0001: initial schema. {db} is replaced with the quoted database name.
-- Kept to types and syntax accepted by both ClickHouse 18.16 and current
-- releases: no LowCardinality, DateTime64, JSON or lightweight deletes.

-- One immutable row per (window, partition range). planned_at is filled by the
-- server (never the client) so concurrent plans are ordered by one clock.
-- Plain MergeTree, not Replacing: a replayed plan adds a row, and readers
-- take min(planned_at), which a merge must never drop.
CREATE TABLE IF NOT EXISTS {db}.window_ranges (
    group_id String,
    topic String,
    `partition` Int32,
    first_offset Int64,
    last_offset Int64,
    window_id String,
    planned_at DateTime DEFAULT now()
) ENGINE = MergeTree
ORDER BY (group_id, topic, `partition`, first_offset, window_id);

-- Window ledger and metadata. Highest version wins under FINAL.
CREATE TABLE IF NOT EXISTS {db}.windows (
    window_id String,
    group_id String,
    status String,
    version UInt64,
    owner String,
    lease_until DateTime,
    topics Array(String),
    partitions Array(Int32),
    first_offsets Array(Int64),
    last_offsets Array(Int64),
    configured_records UInt64,
    records UInt64,
    dead_letters UInt64,
    opened_at DateTime,
    closed_at DateTime,
    written_at DateTime,
    processor String,
    params String,
    output_rows UInt64,
    epsilon Float64,
    delta Float64,
    attempt String,
    updated_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(version)
ORDER BY (group_id, window_id);

-- Synthetic output of every processing attempt of a window. A window that is
-- processed again (after a crash before it was marked written, or by a
-- replica that took over its lease) writes a new attempt; rows of one attempt
-- are deterministic in their key, so a retried insert collapses under FINAL.
CREATE TABLE IF NOT EXISTS {db}.synthetic_instructions (
    id String,
    window_id String,
    attempt String,
    group_id String,
    seq UInt32,
    text String,
    cluster Int32,
    generator_version String,
    epsilon Float64,
    delta Float64,
    created_at DateTime
) ENGINE = ReplacingMergeTree
ORDER BY (window_id, attempt, seq);

-- What was released: the rows of the one attempt each written window
-- recorded. Analysts and annotation tools read this, never the table above.
CREATE VIEW IF NOT EXISTS {db}.published_instructions AS
SELECT id, window_id, attempt, group_id, seq, text, cluster, generator_version, epsilon, delta, created_at
FROM {db}.synthetic_instructions FINAL
WHERE (window_id, attempt) IN
(
    SELECT window_id, attempt FROM {db}.windows FINAL WHERE status = 'written'
);
