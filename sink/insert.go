package sink

import (
	"context"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// insert sends one synchronous batch insert, retried on transient errors. The
// column list is always explicit: ClickHouse 18.16 rejects PrepareBatch on a
// bare "INSERT INTO t", and omitted columns get their server DEFAULT. fill
// is called afresh on every attempt because a batch can be sent only once.
// dedupToken, when non-empty and supported by the server, is passed as
// insert_deduplication_token; correctness never depends on it.
func (c *Client) insert(ctx context.Context, what, table string, cols []string, dedupToken string, fill func(driver.Batch) error) error {
	quoted := make([]string, len(cols))
	for i, col := range cols {
		quoted[i] = "`" + col + "`"
	}
	query := "INSERT INTO " + c.table(table) + " (" + strings.Join(quoted, ", ") + ")"
	return c.retry(ctx, what+" into "+table, func(ctx context.Context) error {
		if dedupToken != "" && c.server.SupportsInsertDedupToken {
			ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
				"insert_deduplication_token": dedupToken,
			}))
		}
		batch, err := c.conn.PrepareBatch(ctx, query)
		if err != nil {
			return err
		}
		defer func() {
			if !batch.IsSent() {
				_ = batch.Abort()
			}
		}()
		if err := fill(batch); err != nil {
			return err
		}
		return batch.Send()
	})
}
