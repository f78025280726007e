-- 0004: delivery of each written window to the optional output topic.
-- {db} is replaced with the quoted database name.

-- One row per state change, highest version wins. 'started' records the
-- output partition and its end offset before the window's first message was
-- produced; 'done' that every message was acknowledged. A window left
-- 'started' (a crash mid-delivery) is completed by reading the partition back
-- from start_offset and producing only the missing messages.
CREATE TABLE IF NOT EXISTS {db}.output_deliveries (
    window_id String,
    attempt String,
    topic String,
    `partition` Int32,
    start_offset Int64,
    status String,
    version UInt64,
    updated_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(version)
ORDER BY (topic, window_id);
