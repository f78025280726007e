package connector

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dpinstruct/dpinstruct/sink"
	"github.com/dpinstruct/dpinstruct/stream"
)

// Source is what the connector needs from Kafka. stream.Source implements
// it; Commit is called only after a window is durably written.
type Source interface {
	Fetch(ctx context.Context) (kafka.Message, error)
	Commit(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// Ledger is what the connector needs from ClickHouse: the window ledger
// and the output table. sink.Client implements it.
type Ledger interface {
	PlanWindow(ctx context.Context, w sink.Window) error
	Plans(ctx context.Context, group, topic string, partition int32, fromOffset int64) ([]sink.Window, error)
	RenewLease(ctx context.Context, w sink.Window, owner string, until time.Time) error
	Abandon(ctx context.Context, w sink.Window) error
	WriteWindow(ctx context.Context, w sink.Window, rows []sink.Row) error
}

// DeadLetters receives messages that cannot be decoded. stream.DeadLetter
// implements it.
type DeadLetters interface {
	Send(ctx context.Context, m kafka.Message, reason stream.Reason, detail string) error
}

// Deps are the connector's collaborators. NewSource is a factory because
// the connector rejoins the group (a fresh reader) when it loses a plan
// race, to re-read from the committed offsets.
type Deps struct {
	NewSource  func() (Source, error)
	Ledger     Ledger
	DeadLetter DeadLetters // nil: a bad message stops the connector
	Processor  Processor
	// Output, when set, also receives every written window's rows, with
	// Deliveries (required then) recording the delivery state.
	Output     Output
	Deliveries Deliveries
	// Budgets are the privacy ledgers each window is charged in before it
	// trains (the ClickHouse table, and the local file when configured).
	// At least one is required.
	Budgets []Budget
	Metrics *Metrics
	Health  *Health
	Logger  *slog.Logger
}

// Connector runs the window loop. Create it with New; it is not safe for
// concurrent use (one loop per process is the design: backpressure comes
// from the loop not fetching while it processes).
type Connector struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	decoder stream.Decoder
	src     Source
	parts   map[partitionKey]*partitionState
	// written counts windows this run processed, wrote and committed.
	written      int
	maxWindows   int
	faults       faults
	lastStats    time.Time
	lastProgress time.Time
	// spillDir is this instance's own directory under window.spill_dir.
	spillDir string
	// shutdown is Run's context: it ends at SIGTERM, while the work
	// context lives on for up to shutdown_timeout to finish a window. Waits
	// that hold no work (on another instance's lease) end with it.
	shutdown context.Context
}

type partitionKey struct {
	topic     string
	partition int32
}

// partitionState is the connector's view of one partition: which planned
// windows lie ahead of the read position, and the window being filled.
type partitionState struct {
	key    partitionKey
	loaded bool
	next   int64         // offset expected next; -1 before the first message
	plans  []sink.Window // plans ahead of next, by first offset
	open   *pending      // a new window, not yet planned
	replay *pending      // records of plans[0], being collected again
}

// pending is a window being filled, new or replayed.
type pending struct {
	plan                        *sink.Window // nil for a new window
	first, last                 int64
	records, deadLetters, bytes int64
	openedAt                    time.Time
	buffer                      *stream.Buffer
}

// errRestartSource asks the loop to drop all in-memory windows and rejoin
// the group, so every partition is re-read from its committed offset.
var errRestartSource = errors.New("window plan lost to a concurrent plan; rejoining the consumer group")

// New builds a connector. maxWindows > 0 makes Run return after that many
// windows were written and committed by this run.
func New(cfg Config, deps Deps, maxWindows int) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.NewSource == nil || deps.Ledger == nil || deps.Processor == nil {
		return nil, errors.New("connector: NewSource, Ledger and Processor are required")
	}
	if deps.Output != nil && deps.Deliveries == nil {
		return nil, errors.New("connector: an Output needs Deliveries")
	}
	if len(deps.Budgets) == 0 {
		return nil, errors.New("connector: at least one privacy ledger (Budgets) is required")
	}
	if deps.Metrics == nil {
		deps.Metrics = NewMetrics()
	}
	if deps.Health == nil {
		deps.Health = &Health{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	f, err := faultsFromEnv()
	if err != nil {
		return nil, err
	}
	return &Connector{
		cfg:  cfg,
		deps: deps,
		log:  deps.Logger,
		decoder: stream.Decoder{
			Format:          stream.Format(cfg.Kafka.Format),
			MaxMessageBytes: cfg.Kafka.MaxMessageBytes,
			UserIDFromKey:   cfg.Kafka.UserIDFromKey,
		},
		parts:      map[partitionKey]*partitionState{},
		maxWindows: maxWindows,
		faults:     f,
		spillDir:   filepath.Join(cfg.Window.SpillDir, safeName.ReplaceAllString(cfg.Instance, "_")),
	}, nil
}

var safeName = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// prepareSpillDir creates this instance's spill directory, private to the
// connector's user, and deletes what a crashed earlier run of the same
// instance left there: spill files hold private text and must not outlive
// their window.
func (c *Connector) prepareSpillDir() error {
	// Only the instance's own directory is forced to 0700: spill_dir itself
	// may be a shared directory such as /tmp, whose mode is not ours to change.
	if err := os.MkdirAll(c.spillDir, 0o700); err != nil {
		return &FieldError{Field: "window.spill_dir", Reason: "cannot be created: " + err.Error()}
	}
	if err := os.Chmod(c.spillDir, 0o700); err != nil {
		return &FieldError{Field: "window.spill_dir", Reason: "cannot be made private: " + err.Error()}
	}
	stale, err := os.ReadDir(c.spillDir)
	if err != nil {
		return fmt.Errorf("reading spill directory: %w", err)
	}
	for _, e := range stale {
		if err := os.RemoveAll(filepath.Join(c.spillDir, e.Name())); err != nil {
			return fmt.Errorf("removing stale spill files: %w", err)
		}
	}
	if len(stale) > 0 {
		c.log.Warn("removed spill files left by an earlier run", "entries", len(stale))
	}
	return nil
}

// Written reports how many windows this run wrote and committed.
func (c *Connector) Written() int { return c.written }

// Run fetches, windows, processes, writes and commits until ctx ends or
// maxWindows windows are written. When ctx ends while a window is being
// processed, that window is finished (within cfg.ShutdownTimeout) and
// committed; windows still filling are dropped uncommitted, to be re-read
// by the next run.
func (c *Connector) Run(ctx context.Context) error {
	c.shutdown = ctx
	done := make(chan struct{})
	defer close(done)
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		select {
		case <-time.After(c.cfg.ShutdownTimeout):
			c.log.Warn("shutdown timeout: abandoning the window in progress; it will be replayed", "timeout", c.cfg.ShutdownTimeout)
			cancelWork()
		case <-done:
		}
	}()

	if err := c.prepareSpillDir(); err != nil {
		return err
	}
	if err := c.openSource(); err != nil {
		return err
	}
	defer func() { c.resetPartitions(); _ = c.src.Close() }()
	c.deps.Health.set(healthOK)

	for {
		if c.maxWindows > 0 && c.written >= c.maxWindows {
			c.log.Info("reached --max-windows; stopping", "windows", c.written)
			return nil
		}
		if ctx.Err() != nil {
			c.log.Info("shutting down; windows still filling are left uncommitted and will be re-read")
			return nil
		}
		err := c.step(ctx, work)
		if errors.Is(err, errRestartSource) {
			c.log.Warn(err.Error())
			c.resetPartitions()
			_ = c.src.Close()
			if err := c.openSource(); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				return nil
			}
			c.deps.Health.set(healthFailed)
			return err
		}
	}
}

func (c *Connector) openSource() error {
	src, err := c.deps.NewSource()
	if err != nil {
		return fmt.Errorf("opening kafka source: %w", err)
	}
	c.src = src
	return nil
}

// step fetches one message (or wakes when a window is due) and acts on it.
func (c *Connector) step(ctx, work context.Context) error {
	fctx, cancel := ctx, context.CancelFunc(func() {})
	if due, ok := c.nextDue(); ok {
		fctx, cancel = context.WithDeadline(ctx, due)
	}
	m, err := c.src.Fetch(fctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return c.closeDue(work)
		}
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("fetching from kafka: %w", err)
	}
	c.deps.Metrics.RecordsIn.Inc()
	c.updateLag()
	return c.handle(work, m)
}

// updateLag refreshes the lag gauge once a second and, every
// progressEvery, logs how far the open windows have filled, so a long
// window shows progress without a metrics dashboard.
func (c *Connector) updateLag() {
	type statser interface{ Stats() kafka.ReaderStats }
	s, ok := c.src.(statser)
	if !ok || time.Since(c.lastStats) < time.Second {
		return
	}
	c.lastStats = time.Now()
	lag := s.Stats().Lag
	c.deps.Metrics.Lag.Set(float64(lag))
	if time.Since(c.lastProgress) < progressEvery {
		return
	}
	c.lastProgress = time.Now()
	var open, filled int64
	for _, ps := range c.parts {
		if ps.open != nil {
			open++
			filled += ps.open.records + ps.open.deadLetters
		}
	}
	c.log.Info("progress", "windows_written", c.written, "open_windows", open,
		"records_in_open_windows", filled, "window_records", c.cfg.Window.MaxRecords, "lag", lag)
}

const progressEvery = 10 * time.Second

// nextDue is the earliest time an open window must close by duration.
func (c *Connector) nextDue() (time.Time, bool) {
	if c.cfg.Window.MaxDuration <= 0 {
		return time.Time{}, false
	}
	var due time.Time
	for _, ps := range c.parts {
		if ps.open == nil {
			continue
		}
		d := ps.open.openedAt.Add(c.cfg.Window.MaxDuration)
		if due.IsZero() || d.Before(due) {
			due = d
		}
	}
	return due, !due.IsZero()
}

func (c *Connector) closeDue(ctx context.Context) error {
	now := time.Now()
	for _, ps := range c.sortedPartitions() {
		if ps.open != nil && !now.Before(ps.open.openedAt.Add(c.cfg.Window.MaxDuration)) {
			if err := c.closeOpen(ctx, ps); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *Connector) sortedPartitions() []*partitionState {
	out := make([]*partitionState, 0, len(c.parts))
	for _, ps := range c.parts {
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b *partitionState) int {
		if a.key.topic != b.key.topic {
			if a.key.topic < b.key.topic {
				return -1
			}
			return 1
		}
		return int(a.key.partition - b.key.partition)
	})
	return out
}

// handle places one message: into the replay of an existing plan when the
// ledger already assigns its offset to a window, otherwise into the
// partition's open window.
func (c *Connector) handle(ctx context.Context, m kafka.Message) error {
	key := partitionKey{m.Topic, int32(m.Partition)}
	ps := c.parts[key]
	if ps == nil {
		ps = &partitionState{key: key, next: -1}
		c.parts[key] = ps
	}
	if ps.loaded && m.Offset < ps.next {
		// The group moved this partition back (a rebalance, or a stale
		// commit by a former owner). Whatever we were filling may now be
		// windowed by someone else: drop it and ask the ledger again.
		c.log.Warn("partition rewound; dropping unplanned records and reloading the ledger",
			"topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "expected", ps.next)
		ps.drop()
		ps.loaded = false
	}
	if !ps.loaded {
		c.log.Info("reading partition", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset)
		if err := c.loadPlans(ctx, ps, m.Offset); err != nil {
			return err
		}
	}
	ps.next = m.Offset + 1

	for len(ps.plans) > 0 && rangeOf(ps.plans[0], key).Last < m.Offset {
		// A plan we never saw the records of: its offsets were skipped
		// (compaction) or read by another owner. Either way not ours.
		if ps.replay != nil {
			if err := c.finishReplay(ctx, ps); err != nil {
				return err
			}
			continue
		}
		ps.plans = ps.plans[1:]
	}
	if len(ps.plans) > 0 && rangeOf(ps.plans[0], key).First <= m.Offset {
		if ps.open != nil {
			// A new window must end where the next plan begins.
			if err := c.closeOpen(ctx, ps); err != nil {
				return err
			}
		}
		return c.addReplay(ctx, ps, m)
	}
	return c.addOpen(ctx, ps, m)
}

func (ps *partitionState) drop() {
	for _, p := range []*pending{ps.open, ps.replay} {
		if p != nil && p.buffer != nil {
			_ = p.buffer.Close()
		}
	}
	ps.open, ps.replay, ps.plans = nil, nil, nil
}

func (c *Connector) resetPartitions() {
	for _, ps := range c.parts {
		ps.drop()
	}
	c.parts = map[partitionKey]*partitionState{}
}

// loadPlans reads the plans of this partition from offset on, keeping only
// the winners of any overlap (see resolvePlans).
func (c *Connector) loadPlans(ctx context.Context, ps *partitionState, from int64) error {
	plans, err := c.plansFrom(ctx, ps.key, from)
	if err != nil {
		return err
	}
	ps.plans = resolvePlans(plans, ps.key)
	ps.loaded = true
	if len(ps.plans) > 0 {
		c.log.Info("ledger has windows ahead on this partition; they will be replayed, not re-cut",
			"topic", ps.key.topic, "partition", ps.key.partition, "windows", len(ps.plans))
	}
	return nil
}

// plansFrom reads the plans of a partition that reach offset from or
// later, plus every plan that overlaps those: a plan that starts before
// from can only be judged against the plans it overlaps there (a written
// window ending just before from beats it), so the query widens until no
// plan starts earlier than what was asked.
func (c *Connector) plansFrom(ctx context.Context, key partitionKey, from int64) ([]sink.Window, error) {
	for {
		start := time.Now()
		plans, err := c.deps.Ledger.Plans(ctx, c.cfg.Kafka.GroupID, key.topic, key.partition, from)
		c.deps.Metrics.observe("plans", start)
		if err != nil {
			return nil, fmt.Errorf("reading window ledger for %s/%d: %w", key.topic, key.partition, err)
		}
		earliest := from
		for _, p := range plans {
			if r := rangeOf(p, key); r.First >= 0 && r.First < earliest {
				earliest = r.First
			}
		}
		if earliest == from {
			return plans, nil
		}
		from = earliest
	}
}

// resolvePlans drops abandoned plans and, where non-abandoned plans
// overlap, keeps a written one if there is one (written windows never
// overlap, so it must be the winner) and otherwise the one recorded first
// (server time, then id). This is the same rule a planner applies when it
// reads its own plan back, so all replicas agree on which window owns an
// offset.
func resolvePlans(plans []sink.Window, key partitionKey) []sink.Window {
	cands := make([]sink.Window, 0, len(plans))
	for _, p := range plans {
		if p.Status != sink.StatusAbandoned {
			cands = append(cands, p)
		}
	}
	slices.SortStableFunc(cands, func(a, b sink.Window) int {
		if aw, bw := a.Status == sink.StatusWritten, b.Status == sink.StatusWritten; aw != bw {
			if aw {
				return -1
			}
			return 1
		}
		// An unknown (zero) PlannedAt sorts last: such a plan cannot prove
		// it came first.
		if az, bz := a.PlannedAt.IsZero(), b.PlannedAt.IsZero(); az != bz {
			if az {
				return 1
			}
			return -1
		}
		if c := a.PlannedAt.Compare(b.PlannedAt); c != 0 {
			return c
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	var kept []sink.Window
	for _, p := range cands {
		r := rangeOf(p, key)
		if !slices.ContainsFunc(kept, func(k sink.Window) bool { return overlaps(rangeOf(k, key), r) }) {
			kept = append(kept, p)
		}
	}
	slices.SortFunc(kept, func(a, b sink.Window) int {
		return int(rangeOf(a, key).First - rangeOf(b, key).First)
	})
	return kept
}

func overlaps(a, b sink.Range) bool { return a.First <= b.Last && b.First <= a.Last }

// rangeOf returns a plan's range on one partition (windows hold one).
func rangeOf(w sink.Window, key partitionKey) sink.Range {
	for _, r := range w.Ranges {
		if r.Topic == key.topic && r.Partition == key.partition {
			return r
		}
	}
	return sink.Range{Topic: key.topic, Partition: key.partition, First: -1, Last: -2}
}

// WindowID derives a window's id from what it covers, so a replay after a
// crash, on any replica, names the window the same way.
func WindowID(group string, ranges []sink.Range) string {
	h := sha256.New()
	h.Write([]byte(group))
	h.Write([]byte{0})
	var b [8]byte
	for _, r := range ranges {
		h.Write([]byte(r.Topic))
		h.Write([]byte{0})
		binary.BigEndian.PutUint32(b[:4], uint32(r.Partition))
		h.Write(b[:4])
		binary.BigEndian.PutUint64(b[:], uint64(r.First))
		h.Write(b[:])
		binary.BigEndian.PutUint64(b[:], uint64(r.Last))
		h.Write(b[:])
	}
	return "w-" + hex.EncodeToString(h.Sum(nil)[:16])
}

func (c *Connector) newPending(plan *sink.Window) (*pending, error) {
	buf, err := stream.NewBuffer(stream.BufferOptions{
		BatchRows:   c.cfg.Window.BatchRows,
		BatchBytes:  c.cfg.Window.BatchBytes,
		MemoryBytes: c.cfg.Window.MemoryBytes,
		SpillDir:    c.spillDir,
	})
	if err != nil {
		return nil, fmt.Errorf("window buffer: %w", err)
	}
	return &pending{plan: plan, first: -1, last: -1, openedAt: time.Now(), buffer: buf}, nil
}

// add decodes m into p. Bad messages count as dead letters of the window
// (their offsets are still covered by it, so committing moves past them);
// sendDeadLetter is false on replay, where the first pass already sent them.
func (c *Connector) add(ctx context.Context, p *pending, m kafka.Message, sendDeadLetter bool) error {
	if p.first < 0 {
		p.first = m.Offset
	}
	p.last = m.Offset
	rec, err := c.decoder.Decode(m)
	if err != nil {
		var de *stream.DecodeError
		if !errors.As(err, &de) {
			return fmt.Errorf("decoding %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
		}
		p.deadLetters++
		if !sendDeadLetter {
			return nil
		}
		if c.deps.DeadLetter == nil {
			return fmt.Errorf("bad message and no kafka.dead_letter_topic to put it in (fix the message or configure one): %w", err)
		}
		if err := c.deps.DeadLetter.Send(ctx, m, de.Reason, de.Error()); err != nil {
			return fmt.Errorf("dead-lettering %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
		}
		c.deps.Metrics.DeadLetters.WithLabelValues(string(de.Reason)).Inc()
		c.log.Warn("message sent to dead-letter topic", "reason", de.Reason,
			"topic", m.Topic, "partition", m.Partition, "offset", m.Offset)
		return nil
	}
	spilled := p.buffer.Spilled()
	if err := p.buffer.Append(rec); err != nil {
		return fmt.Errorf("buffering %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
	}
	if !spilled && p.buffer.Spilled() {
		c.deps.Metrics.Spilled.Inc()
	}
	p.records++
	p.bytes += int64(len(m.Value))
	return nil
}

func (c *Connector) addOpen(ctx context.Context, ps *partitionState, m kafka.Message) error {
	if ps.open == nil {
		p, err := c.newPending(nil)
		if err != nil {
			return err
		}
		ps.open = p
	}
	if err := c.add(ctx, ps.open, m, true); err != nil {
		return err
	}
	if max := c.cfg.Window.MaxRecords; max > 0 && ps.open.records+ps.open.deadLetters >= max {
		return c.closeOpen(ctx, ps)
	}
	return nil
}

func (c *Connector) addReplay(ctx context.Context, ps *partitionState, m kafka.Message) error {
	plan := ps.plans[0]
	if ps.replay == nil {
		p, err := c.newPending(&plan)
		if err != nil {
			return err
		}
		ps.replay = p
		if r := rangeOf(plan, ps.key); m.Offset != r.First && plan.Status != sink.StatusWritten {
			// Offsets are committed only at the end of written windows, so
			// a read that starts inside an unwritten plan means its first
			// records are gone (retention) or the ledger is inconsistent.
			// Processing part of a window under its id would be wrong.
			return fmt.Errorf("window %s (offsets %d-%d of %s/%d) cannot be replayed whole: reading resumed at offset %d",
				plan.ID, r.First, r.Last, r.Topic, r.Partition, m.Offset)
		}
	}
	// A written window's records are not needed again: only its end.
	if plan.Status != sink.StatusWritten {
		if err := c.add(ctx, ps.replay, m, false); err != nil {
			return err
		}
	} else {
		if ps.replay.first < 0 {
			ps.replay.first = m.Offset
		}
		ps.replay.last = m.Offset
	}
	if m.Offset >= rangeOf(plan, ps.key).Last {
		return c.finishReplay(ctx, ps)
	}
	return nil
}

// closeOpen plans the open window, checks the plan won, and processes it.
func (c *Connector) closeOpen(ctx context.Context, ps *partitionState) error {
	p := ps.open
	ps.open = nil
	name, params := describe(c.deps.Processor)
	now := time.Now()
	w := sink.Window{
		Group:             c.cfg.Kafka.GroupID,
		Status:            sink.StatusPlanned,
		Owner:             c.cfg.Instance,
		LeaseUntil:        now.Add(c.cfg.Window.Lease),
		Ranges:            []sink.Range{{Topic: ps.key.topic, Partition: ps.key.partition, First: p.first, Last: p.last}},
		ConfiguredRecords: uint64(max(c.cfg.Window.MaxRecords, 0)),
		Records:           uint64(p.records),
		DeadLetters:       uint64(p.deadLetters),
		OpenedAt:          p.openedAt,
		ClosedAt:          now,
		Processor:         name,
		Params:            params,
	}
	base := WindowID(w.Group, w.Ranges)
	for try := 1; ; try++ {
		// A range whose earlier plan was abandoned (it lost a race, and the
		// winner was abandoned too) cannot reuse that id: an abandoned
		// status outranks a new plan. Later tries add a suffix, which is
		// still deterministic given the ledger.
		w.ID = base
		if try > 1 {
			w.ID = fmt.Sprintf("%s-%d", base, try)
		}
		retry, err := c.planAndProcess(ctx, ps, w, p)
		if !retry {
			return err
		}
		if try >= 10 {
			_ = p.buffer.Close()
			return fmt.Errorf("window %s: planned %d times under abandoned ids; giving up", base, try)
		}
	}
}

// planAndProcess records w, waits, reads the ledger back, and processes w
// if it won. retry is true when w's id was abandoned before and the window
// must be planned again under a new id.
func (c *Connector) planAndProcess(ctx context.Context, ps *partitionState, w sink.Window, p *pending) (retry bool, err error) {
	start := time.Now()
	if err := c.deps.Ledger.PlanWindow(ctx, w); err != nil {
		_ = p.buffer.Close()
		return false, fmt.Errorf("recording window %s in the ledger: %w", w.ID, err)
	}
	c.deps.Metrics.observe("plan", start)
	if took := time.Since(start); took > c.cfg.Window.PlanSettle-time.Second {
		// Plans are ordered by the server time at which their insert began,
		// and the settle wait assumes an insert is visible within
		// plan_settle minus that clock's one-second resolution. A slower
		// insert could be ordered before a plan that has already checked
		// and won, so this plan must give way.
		return false, c.abandon(ctx, w, p, fmt.Sprintf("recording it took %s, over plan_settle-1s", took.Round(time.Millisecond)))
	}
	c.faults.hit("after-plan", w.ID, c.log)

	if err := sleep(ctx, c.cfg.Window.PlanSettle); err != nil {
		_ = p.buffer.Close()
		return false, err
	}
	plans, err := c.plansFrom(ctx, ps.key, p.first)
	if err != nil {
		_ = p.buffer.Close()
		return false, fmt.Errorf("reading back window %s: %w", w.ID, err)
	}
	var mine *sink.Window
	for _, k := range resolvePlans(plans, ps.key) {
		if k.ID == w.ID {
			mine = &k
			break
		}
		if overlaps(rangeOf(k, ps.key), w.Ranges[0]) {
			return false, c.abandon(ctx, w, p, "it overlaps the earlier plan "+k.ID)
		}
	}
	if mine == nil {
		if slices.ContainsFunc(plans, func(k sink.Window) bool { return k.ID == w.ID && k.Status == sink.StatusAbandoned }) {
			return true, nil
		}
		// Our own acknowledged insert is not visible: reads are not seeing
		// writes (a lagging replica?), so the overlap check above proves
		// nothing. Stop rather than risk two windows over one record.
		_ = p.buffer.Close()
		return false, fmt.Errorf("window %s: recorded plan not visible after %s; is the ledger read from a lagging replica?", w.ID, c.cfg.Window.PlanSettle)
	}
	if mine.Status == sink.StatusWritten {
		// The same range was written before (another replica cut the same
		// window, or a replay the ledger had not shown us yet): only the
		// commit is missing.
		_ = p.buffer.Close()
		c.log.Info("window already written by another run; committing its offsets", "window", w.ID)
		c.deps.Metrics.Windows.WithLabelValues("skipped").Inc()
		return false, c.commit(ctx, *mine)
	}
	return false, c.process(ctx, w, p, false)
}

// abandon gives up a plan this run recorded, and asks the loop to re-read
// from the committed offsets, where the ledger decides again.
func (c *Connector) abandon(ctx context.Context, w sink.Window, p *pending, why string) error {
	_ = p.buffer.Close()
	if err := c.deps.Ledger.Abandon(ctx, w); err != nil {
		return fmt.Errorf("abandoning window %s: %w", w.ID, err)
	}
	c.deps.Metrics.Windows.WithLabelValues("abandoned").Inc()
	c.log.Warn("window plan abandoned", "window", w.ID, "because", why)
	return errRestartSource
}

// finishReplay completes an existing plan whose records have all been read
// again: commit it if it was written, else process it under its old id.
func (c *Connector) finishReplay(ctx context.Context, ps *partitionState) error {
	p := ps.replay
	ps.replay = nil
	plan := *p.plan
	ps.plans = ps.plans[1:]
	if plan.Status == sink.StatusWritten {
		_ = p.buffer.Close()
		c.deps.Metrics.Windows.WithLabelValues("skipped").Inc()
		c.log.Info("window already written; committing its offsets", "window", plan.ID)
		return c.commit(ctx, plan)
	}
	latest, err := c.awaitLease(ctx, plan, ps.key)
	if err != nil {
		_ = p.buffer.Close()
		return err
	}
	if latest.Status == sink.StatusWritten {
		_ = p.buffer.Close()
		c.deps.Metrics.Windows.WithLabelValues("skipped").Inc()
		return c.commit(ctx, latest)
	}
	latest.Records, latest.DeadLetters = uint64(p.records), uint64(p.deadLetters)
	c.log.Info("replaying a planned window that was never written", "window", plan.ID, "previous_owner", plan.Owner)
	c.deps.Metrics.Windows.WithLabelValues("replayed").Inc()
	return c.process(ctx, latest, p, true)
}

// awaitLease re-reads the plan, waits while another live instance holds
// it, then takes it over. It returns the plan's latest state, or
// errRestartSource when the plan turns out not to be a winner (abandoned by
// its owner, or beaten by a plan this run had not seen).
//
// Two instances can see the same lapsed lease at the same moment and both
// take it over. So a takeover is settled the way plans are: renew, wait
// window.plan_settle, read back, and keep the window only if the ledger
// names this instance its owner. The ledger keeps the renewal with the
// highest version, the same answer for every reader, so exactly one
// instance goes on; the others wait on its lease. Without this both would
// process the window: one attempt wasted, and charged to the privacy
// budget for nothing.
func (c *Connector) awaitLease(ctx context.Context, plan sink.Window, key partitionKey) (sink.Window, error) {
	renewed := false
	for {
		plans, err := c.plansFrom(ctx, key, rangeOf(plan, key).First)
		if err != nil {
			return plan, fmt.Errorf("re-reading window %s: %w", plan.ID, err)
		}
		if !slices.ContainsFunc(resolvePlans(plans, key), func(w sink.Window) bool { return w.ID == plan.ID }) {
			return plan, errRestartSource
		}
		for _, p := range plans {
			if p.ID == plan.ID {
				plan = p
			}
		}
		if plan.Status == sink.StatusWritten {
			return plan, nil
		}
		if renewed {
			if plan.Owner == c.cfg.Instance {
				return plan, nil
			}
			c.log.Info("another instance took the window over at the same time; waiting on its lease",
				"window", plan.ID, "owner", plan.Owner)
			renewed = false
		}
		if plan.Owner == c.cfg.Instance || !time.Now().Before(plan.LeaseUntil) {
			until := time.Now().Add(c.cfg.Window.Lease)
			if err := c.deps.Ledger.RenewLease(ctx, plan, c.cfg.Instance, until); err != nil {
				return plan, fmt.Errorf("taking over window %s: %w", plan.ID, err)
			}
			renewed = true
			if err := sleep(ctx, c.cfg.Window.PlanSettle); err != nil {
				return plan, err
			}
			continue
		}
		c.log.Info("window is leased by another instance; waiting", "window", plan.ID, "owner", plan.Owner, "until", plan.LeaseUntil)
		if err := c.sleepUnlessShutdown(ctx, min(time.Until(plan.LeaseUntil)+10*time.Millisecond, time.Second)); err != nil {
			return plan, err
		}
	}
}

// process runs the processor on a planned window, writes the result, and
// commits the window's offsets, in that order.
func (c *Connector) process(ctx context.Context, w sink.Window, p *pending, replay bool) error {
	defer func() { _ = p.buffer.Close() }()
	r := w.Ranges[0]
	win := &Window{
		ID: w.ID, Group: w.Group, Topic: r.Topic, Partition: r.Partition, First: r.First, Last: r.Last,
		Records: p.records, DeadLetters: p.deadLetters, Bytes: p.bytes,
		OpenedAt: w.OpenedAt, ClosedAt: w.ClosedAt, ConfiguredRecords: int64(w.ConfiguredRecords),
		Replay: replay, buffer: p.buffer,
	}
	// The lease is renewed until the write is acknowledged: a write retried
	// across a ClickHouse restart can outlast a lease.
	stopRenew := c.renewWhileProcessing(ctx, w)
	defer stopRenew()
	// A new attempt id per processing run: a window processed twice (a
	// crash before its written mark, a lease taken over) publishes only the
	// rows of the attempt its written mark names, never a mix of two, and
	// each attempt is charged to the privacy ledger on its own.
	w.Attempt = newAttemptID()
	spend, err := c.planSpend(win)
	if err != nil {
		return err
	}
	// Charged before the processor reads a record: if the charge fails or
	// is refused, nothing of the window is trained or released.
	if err := c.charge(ctx, w, w.Attempt, spend); err != nil {
		return err
	}
	c.faults.hit("after-charge", w.ID, c.log)
	start := time.Now()
	res, err := c.deps.Processor.Process(ctx, win)
	c.deps.Metrics.ProcessTime.Observe(time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("processing window %s: %w", w.ID, err)
	}
	if err := checkResult(w.ID, res, spend); err != nil {
		return err
	}
	c.faults.hit("before-write", w.ID, c.log)
	w.Status = sink.StatusWritten
	w.WrittenAt = time.Now()
	w.OutputRows = uint64(len(res.Rows))
	// The window is published under what was charged, which bounds what
	// the processor spent.
	w.Epsilon, w.Delta = spend.Epsilon, spend.Delta
	start = time.Now()
	if err := c.deps.Ledger.WriteWindow(ctx, w, res.Rows); err != nil {
		return fmt.Errorf("writing window %s: %w", w.ID, err)
	}
	stopRenew()
	c.deps.Metrics.observe("write", start)
	if err := c.deliver(ctx, w, res.Rows); err != nil {
		return err
	}
	c.faults.hit("before-commit", w.ID, c.log)
	if err := c.commitOffsets(ctx, w); err != nil {
		return err
	}
	c.written++
	c.deps.Metrics.Windows.WithLabelValues("written").Inc()
	c.deps.Metrics.WindowRecords.Observe(float64(p.records))
	c.log.Info("window written and committed", "window", w.ID, "topic", r.Topic, "partition", r.Partition,
		"first_offset", r.First, "last_offset", r.Last, "records", p.records, "dead_letters", p.deadLetters,
		"rows", len(res.Rows), "spilled", p.buffer.Spilled(), "replay", replay, "took", time.Since(win.ClosedAt).Round(time.Millisecond))
	// Refresh the lag gauge past its once-a-second throttle: when the
	// stream goes idle after this window no fetch would, and the gauge
	// would keep the lag of the last fetched batch (a stale backlog on a
	// caught-up connector).
	c.lastStats = time.Time{}
	c.updateLag()
	return nil
}

// commit delivers a window already written (by an earlier run or another
// replica) to the output topic if that is not done yet, then commits its
// offsets.
func (c *Connector) commit(ctx context.Context, w sink.Window) error {
	// A written window reaches the output topic before its offsets are
	// committed, so a crash in between redelivers (exactly once, see
	// deliver) instead of losing it.
	if err := c.deliver(ctx, w, nil); err != nil {
		return err
	}
	return c.commitOffsets(ctx, w)
}

// commitOffsets commits the offsets of a window whose output is written
// and delivered. A failed commit is not fatal: the window is already
// written, so the next reader of these offsets finds it in the ledger and
// commits instead of reprocessing.
func (c *Connector) commitOffsets(ctx context.Context, w sink.Window) error {
	for _, r := range w.Ranges {
		err := c.src.Commit(ctx, kafka.Message{Topic: r.Topic, Partition: int(r.Partition), Offset: r.Last})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.log.Warn("offset commit failed; the ledger still marks the window written", "window", w.ID, "err", err)
		}
	}
	return nil
}

// renewWhileProcessing keeps the plan's lease alive so no other replica
// replays a window this one is still working on.
func (c *Connector) renewWhileProcessing(ctx context.Context, w sink.Window) (stop func()) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(c.cfg.Window.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				if err := c.deps.Ledger.RenewLease(rctx, w, c.cfg.Instance, time.Now().Add(c.cfg.Window.Lease)); err != nil && rctx.Err() == nil {
					c.log.Warn("lease renewal failed", "window", w.ID, "err", err)
				}
			}
		}
	}()
	return sync.OnceFunc(func() { cancel(); <-done })
}

func newAttemptID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

func describe(p Processor) (string, string) {
	if d, ok := p.(Describer); ok {
		return d.Describe()
	}
	return fmt.Sprintf("%T", p), "{}"
}

// sleepUnlessShutdown is sleep that also ends, with context.Canceled, when
// the connector is asked to shut down: for waits that hold nothing (no
// charge made, no offsets to commit), so SIGTERM need not wait them out.
func (c *Connector) sleepUnlessShutdown(ctx context.Context, d time.Duration) error {
	if c.shutdown == nil {
		return sleep(ctx, d)
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(c.shutdown, stop)()
	if err := sleep(sctx, d); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return context.Canceled
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
