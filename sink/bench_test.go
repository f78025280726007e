package sink

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

const benchRows = 100_000

func benchData() []Row {
	rows := make([]Row, benchRows)
	for i := range rows {
		rows[i] = Row{Seq: uint32(i), Text: "synthetic instruction number " + strconv.Itoa(i),
			Cluster: int32(i % 16), GeneratorVersion: "gen-1", Epsilon: 1.5, Delta: 1e-6}
	}
	return rows
}

// BenchmarkWriteWindow compares WriteWindow with a raw clickhouse-go batch
// insert of the same prepared rows; compare the rows/s metrics of the two
// sub-benchmarks to get the sink's overhead ratio.
//
//	DPINSTRUCT_CLICKHOUSE_DSN=clickhouse://default@127.0.0.1:19000/default \
//	  go test -run '^$' -bench WriteWindow -benchtime 5x ./sink/
func BenchmarkWriteWindow(b *testing.B) {
	c := newTestDB(b, true)
	rows := benchData()
	closed := time.Now()

	b.Run("sink", func(b *testing.B) {
		ctx := testCtx(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			w := testWindow(fmt.Sprintf("bench-sink-%d", i), Range{"in", 0, int64(i) * benchRows, int64(i+1)*benchRows - 1})
			w.ClosedAt = closed
			if err := c.WriteWindow(ctx, w, rows); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})

	b.Run("raw", func(b *testing.B) {
		ctx := testCtx(b)
		query := "INSERT INTO " + c.table("synthetic_instructions") +
			" (id, window_id, group_id, seq, text, cluster, generator_version, epsilon, delta, created_at)"
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			wid := fmt.Sprintf("bench-raw-%d", i)
			batch, err := c.Conn().PrepareBatch(ctx, query)
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range rows {
				if err := batch.Append(RowID(wid, r.Seq), wid, "g1", r.Seq, r.Text, r.Cluster,
					r.GeneratorVersion, r.Epsilon, r.Delta, closed); err != nil {
					b.Fatal(err)
				}
			}
			if err := batch.Send(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}
