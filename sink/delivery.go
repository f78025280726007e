package sink

import (
	"context"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Delivery is the state of one written window's delivery to the output
// topic (table output_deliveries).
type Delivery struct {
	WindowID, Attempt, Topic string
	Partition                int32
	// StartOffset is the output partition's end offset before the first
	// message of this window was produced: a read-back starts there.
	StartOffset int64
	Done        bool
}

var deliveryCols = []string{"window_id", "attempt", "topic", "partition", "start_offset", "status", "version"}

// RecordDelivery stores d's state. Later calls win (a done state always
// outranks a started one).
func (c *Client) RecordDelivery(ctx context.Context, d Delivery) error {
	status, rank := "started", uint64(0)
	if d.Done {
		status, rank = "done", 1
	}
	version := rank<<62 | uint64(time.Now().UnixNano())>>2
	return c.insert(ctx, "record output delivery of window "+d.WindowID, "output_deliveries", deliveryCols, "",
		func(b driver.Batch) error {
			return b.Append(d.WindowID, d.Attempt, d.Topic, d.Partition, d.StartOffset, status, version)
		})
}

// Delivery returns the latest delivery state of window to topic, if any.
func (c *Client) Delivery(ctx context.Context, window, topic string) (Delivery, bool, error) {
	var d Delivery
	var found bool
	query := "SELECT window_id, attempt, topic, `partition`, start_offset, status FROM " + c.table("output_deliveries") +
		" FINAL WHERE topic = ? AND window_id = ?"
	err := c.retry(ctx, "read output delivery of window "+window, func(ctx context.Context) error {
		found = false
		rows, err := c.conn.Query(ctx, query, topic, window)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var status string
			if err := rows.Scan(&d.WindowID, &d.Attempt, &d.Topic, &d.Partition, &d.StartOffset, &status); err != nil {
				return err
			}
			d.Done, found = status == "done", true
		}
		return rows.Err()
	})
	return d, found, err
}

// WindowRows returns the output rows of one attempt of a window, by seq:
// what a delivery resumed after a crash sends.
func (c *Client) WindowRows(ctx context.Context, window, attempt string) ([]Row, error) {
	var out []Row
	query := "SELECT seq, text, cluster, generator_version, epsilon, delta FROM " + c.table("synthetic_instructions") +
		" FINAL WHERE window_id = ? AND attempt = ? ORDER BY seq"
	err := c.retry(ctx, "read rows of window "+window, func(ctx context.Context) error {
		out = out[:0]
		rows, err := c.conn.Query(ctx, query, window, attempt)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r Row
			if err := rows.Scan(&r.Seq, &r.Text, &r.Cluster, &r.GeneratorVersion, &r.Epsilon, &r.Delta); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}
