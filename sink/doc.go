// Package sink stores dpinstruct's output in ClickHouse.
//
// It owns three things:
//
//   - the schema: versioned, embedded DDL (migrations/NNNN_name.sql) applied by
//     [Client.Migrate] and verified by [Client.CheckSchema];
//   - the window ledger: which Kafka offset ranges belong to which processing
//     window, and the window's lifecycle (planned → written | abandoned), see
//     [Client.PlanWindow], [Client.RenewLease], [Client.Abandon],
//     [Client.Plans] and [Client.Window];
//   - the synthetic output of a window, written idempotently by
//     [Client.WriteWindow].
//
// Privacy: the sink only ever receives synthetic rows and window metadata,
// never raw private text, and it deliberately does not import the stream,
// connector or models packages. Errors never contain row text or the DSN
// password.
//
// Idempotency does not rely on insert deduplication (unavailable on old
// servers such as 18.16): every table is a ReplacingMergeTree whose sorting key
// is the identity of a row, and readers use FINAL or aggregate over versions.
// Window rows carry version = rank(status)<<48 | unix_millis, so a written
// window always beats any later lease renewal regardless of client clocks.
//
// The package works with ClickHouse 18.16 (Debian 12) and current releases over
// the native protocol; see deploy/local/clickhouse.sh for a private local
// server used by the tests (DPINSTRUCT_CLICKHOUSE_DSN).
package sink
