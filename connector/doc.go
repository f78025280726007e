// Package connector wires the data plane together: it reads records from a
// Kafka source, cuts them into tumbling windows, hands each window to a
// Processor, writes the result and the window's metadata to ClickHouse, and
// only then commits the window's offsets.
//
// # Delivery guarantee
//
// The window ledger in ClickHouse, not Kafka's committed offsets, is the
// source of truth for which records belong to which window:
//
//  1. A window's offset range is recorded durably ("planned") before the
//     window is processed. Its id is a hash of (group, topic, partition,
//     first offset, last offset), so a replay re-derives the same id.
//  2. After recording, the connector waits Window.PlanSettle and reads the
//     ledger back: every plan that overlaps its range, and every plan that
//     overlaps those. Of overlapping plans a written one wins, else the one
//     recorded first (ClickHouse's own clock, then id); a plan whose insert
//     took longer than PlanSettle minus one second gives way too. A losing
//     plan is abandoned and the source restarts from the committed offsets.
//  3. A record that falls inside an existing plan is never put into a new
//     window: a written plan is committed without processing, an unwritten
//     one is processed again with the same id once its owner's lease lapses.
//  4. Offsets are committed only after the output and the "written" status
//     are acknowledged by ClickHouse. Each processing run writes its rows
//     under a fresh attempt id and the written status names that attempt,
//     so the published_instructions view shows exactly one run's rows per
//     window, however often a crash made the window run again.
//
// Windows never span partitions. kafka-go's group reader gives no
// revocation callback, so after a rebalance the new owner of a partition
// must be able to rebuild any unwritten window from that partition alone.
//
// # Privacy
//
// Record text flows stream -> connector -> Processor. The connector never
// logs it, never puts it in an error, and writes to ClickHouse only what the
// Processor returns plus counts and offsets.
package connector
