// Package serverwatch tells a failing test that a local server it relies on
// (ClickHouse or ZooKeeper, started by deploy/local/daemon.sh) has exited,
// and why, from the tail of the server's own logs.
//
// A server can pass its readiness check and die a moment later (ClickHouse
// 18.16 segfaults when its ZooKeeper session breaks); the test then fails
// much later with "connection refused", far from the cause. A test that
// calls ReportOnFailure gets the cause beside its own failure.
package serverwatch
