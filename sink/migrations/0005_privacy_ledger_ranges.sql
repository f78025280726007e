-- 0005: the offsets each privacy charge read. {db} is replaced with the
-- quoted database name. Types limited to those accepted by ClickHouse 18.16
-- and current releases.

-- Parallel arrays, one element per (topic, partition) range of the charged
-- window, as in windows. Lifetime accounting composes the charges that read
-- a record, so a record's spend is that of the windows it was in. Rows from
-- before this migration read back with empty arrays: no ranges, which
-- counts as covering every record.
-- 18.16 has no ADD COLUMN IF NOT EXISTS: when a re-run finds the columns
-- already there (one ALTER adds all four at once), Migrate counts the
-- statement as done.
ALTER TABLE {db}.privacy_ledger
    ADD COLUMN range_topics Array(String),
    ADD COLUMN range_partitions Array(Int32),
    ADD COLUMN range_first_offsets Array(Int64),
    ADD COLUMN range_last_offsets Array(Int64);
