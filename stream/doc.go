// Package stream moves user instructions from Kafka into windows of Arrow
// record batches, and back out to Kafka for demos and dead letters.
//
// The pieces, in the order a message meets them:
//
//   - [Source] fetches messages from a topic as a member of a consumer
//     group. Offsets are committed only when the caller says so, after it
//     has made its output durable.
//   - [Decoder] turns one message into a [Record], or into a
//     [*DecodeError] naming a [Reason].
//   - [Buffer] stores the records of one window as Arrow record batches
//     built by a [BatchBuilder], spilling to Arrow IPC files on disk beyond
//     a memory bound.
//   - [DeadLetter] forwards messages that could not be decoded to a
//     dead-letter topic on the same cluster.
//   - [ProduceJSONL] loads JSON lines into a topic (the produce command).
//
// # Privacy
//
// Message values are private user text. Nothing in this package puts a
// message's key or value, or any part of it, into an error, a panic, a log
// line or a metric: errors name a reason code, the field at fault, and the
// topic, partition and offset of the message. Byte offsets into a message
// and line numbers of an input file are the most detail an error gives. The
// one place raw messages are written is the dead-letter topic, which lives
// on the same cluster as the source topic and so under the same access
// control.
//
// # Arrow schema
//
// Batches produced by [BatchBuilder] and [Buffer] have the schema returned
// by [Schema]. It is public API: downstream code reads columns by these
// names and types.
//
//	column      type                      nullable  content
//	----------  ------------------------  --------  -----------------------------------------
//	id          utf8                      no        message id, default "<topic>/<partition>/<offset>"
//	user_id     utf8                      yes       user id; null when unknown
//	text        utf8                      no        the instruction, valid UTF-8, never blank
//	event_time  timestamp[ms, tz=UTC]     no        event time; 0001-01-01T00:00:00Z when unknown
//	partition   int32                     no        Kafka partition the message came from
//	offset      int64                     no        Kafka offset of the message
package stream
