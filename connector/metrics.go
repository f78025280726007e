package connector

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the connector's Prometheus series. Labels carry only fixed
// vocabularies (reasons, outcomes, operations), never record content, so a
// metric can never leak an instruction. Values are counts of messages and
// windows (stream metadata, as visible in Kafka's own offsets) and
// timings; nothing derived from content, such as byte sizes, is exported,
// since that would be a statistic of private data outside the DP guarantee.
type Metrics struct {
	registry      *prometheus.Registry
	RecordsIn     prometheus.Counter
	DeadLetters   *prometheus.CounterVec
	Windows       *prometheus.CounterVec
	WindowRecords prometheus.Histogram
	Lag           prometheus.Gauge
	SinkLatency   *prometheus.HistogramVec
	ProcessTime   prometheus.Histogram
	Spilled       prometheus.Counter
	// EpsilonCharged is this process's sum of charged epsilons (the
	// ledger's own total spans every replica and run).
	EpsilonCharged prometheus.Counter
}

// NewMetrics registers the series in a private registry (plus Go and
// process collectors), so tests can build many connectors in one process.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { r.MustRegister(c) }
	m := &Metrics{
		registry: r,
		RecordsIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dpinstruct_records_in_total", Help: "Kafka messages fetched, good and bad.",
		}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dpinstruct_dead_letters_total", Help: "Messages sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		Windows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dpinstruct_windows_total",
			Help: "Windows by outcome: written (processed and committed), replayed (an earlier plan processed again), skipped (already written, only committed), abandoned (lost a plan race), refused (its privacy charge would pass privacy.lifetime_epsilon).",
		}, []string{"outcome"}),
		WindowRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dpinstruct_window_records", Help: "Records per written window.",
			Buckets: prometheus.ExponentialBuckets(10, 4, 8),
		}),
		Lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "dpinstruct_consumer_lag", Help: "Messages behind the partition high watermark, as kafka-go last saw it.",
		}),
		SinkLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dpinstruct_sink_latency_seconds", Help: "ClickHouse call latency by operation, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.002, 2, 14),
		}, []string{"op"}),
		ProcessTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "dpinstruct_process_seconds", Help: "Time the processor spent on a window.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}),
		Spilled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dpinstruct_windows_spilled_total", Help: "Windows that outgrew window.memory_bytes and spilled to disk.",
		}),
		EpsilonCharged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dpinstruct_epsilon_charged_total", Help: "Epsilon this process charged to the privacy ledger, summed over window attempts (basic composition).",
		}),
	}
	f(m.RecordsIn)
	f(m.DeadLetters)
	f(m.Windows)
	f(m.WindowRecords)
	f(m.Lag)
	f(m.SinkLatency)
	f(m.ProcessTime)
	f(m.Spilled)
	f(m.EpsilonCharged)
	return m
}

// observe times one sink call.
func (m *Metrics) observe(op string, start time.Time) {
	m.SinkLatency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// Health is what /healthz reports: healthy once the connector has reached
// Kafka and ClickHouse, unhealthy after a fatal error.
type Health struct{ state atomic.Int32 }

const (
	healthStarting int32 = iota
	healthOK
	healthFailed
)

func (h *Health) set(s int32) { h.state.Store(s) }

// ServeHTTP implements http.Handler for /healthz.
func (h *Health) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	switch h.state.Load() {
	case healthOK:
		_, _ = w.Write([]byte("ok\n"))
	case healthStarting:
		http.Error(w, "starting", http.StatusServiceUnavailable)
	default:
		http.Error(w, "failed", http.StatusServiceUnavailable)
	}
}

// serveObservability serves /metrics and /healthz on addr until ctx ends.
// It returns the bound address (useful with port 0).
func serveObservability(ctx context.Context, addr string, m *Metrics, h *Health, log *slog.Logger) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", &FieldError{Field: "observability.listen", Reason: "cannot listen: " + err.Error()}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	mux.Handle("/healthz", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	return ln.Addr().String(), nil
}
