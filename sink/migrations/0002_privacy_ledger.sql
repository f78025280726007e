-- 0002: privacy budget ledger. {db} is replaced with the quoted database name.
-- Types limited to those accepted by ClickHouse 18.16 and current releases.

-- One row per charge, append-only. A charge is keyed by (group_id, window_id,
-- attempt): a retried insert of the same charge collapses, a second attempt
-- of a window is a second charge. Readers aggregate per key with max(), so a
-- merge can never lower the total.
CREATE TABLE IF NOT EXISTS {db}.privacy_ledger (
    group_id String,
    window_id String,
    attempt String,
    charged_at DateTime DEFAULT now(),
    epsilon Float64,
    delta Float64,
    mechanism String,
    params String,
    partitions Array(Int32),
    version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (group_id, window_id, attempt);
