package pipeline

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/checkpoint"
)

// These are unit tests of the pipeline's ordering logic with in-memory fakes; the
// end-to-end tests against real servers live with each source.

func pos(n uint64) cdc.Position { return binary.BigEndian.AppendUint64(nil, n) }

type event struct {
	kind string // "apply", "save", "ack", "load"
	pos  uint64
	n    int
}

type recorder struct {
	mu     sync.Mutex
	events []event
}

func (r *recorder) add(e event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) list() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

type fakeSource struct {
	rec     *recorder
	tables  []cdc.Table
	chunks  map[string][]cdc.Chunk
	rows    map[string][]cdc.Row // chunk ID → rows
	batches []cdc.Batch
	read    []string // chunk IDs read
	mu      sync.Mutex
	startAt cdc.Position
	resumed cdc.Position
	sent    chan struct{} // closed when every batch was sent
	// resumable makes snapshots cdc.ResumableSnapshot; cursors records the
	// cursor each ReadChunkFrom started at, by chunk ID.
	resumable bool
	cursors   map[string]string
}

func (s *fakeSource) Open(context.Context) ([]cdc.Table, error) { return s.tables, nil }
func (s *fakeSource) BeginSnapshot(_ context.Context, resume cdc.Position) (cdc.Snapshot, error) {
	s.resumed = resume
	p := pos(100)
	if resume != nil {
		p = resume
	}
	if s.resumable {
		return &resumableSnap{fakeSnap{s: s, p: p}}, nil
	}
	return &fakeSnap{s: s, p: p}, nil
}
func (s *fakeSource) Stream(ctx context.Context, from cdc.Position, out chan<- cdc.Batch) error {
	s.startAt = from
	for _, b := range s.batches {
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if s.sent != nil {
		close(s.sent)
	}
	<-ctx.Done()
	return ctx.Err()
}
func (s *fakeSource) Ack(_ context.Context, p cdc.Position) error {
	s.rec.add(event{kind: "ack", pos: binary.BigEndian.Uint64(p)})
	return nil
}
func (s *fakeSource) Close() error { return nil }

type fakeSnap struct {
	s *fakeSource
	p cdc.Position
}

func (f *fakeSnap) Position() cdc.Position { return f.p }
func (f *fakeSnap) Chunks(_ context.Context, t cdc.Table) ([]cdc.Chunk, error) {
	return f.s.chunks[t.Name], nil
}
func (f *fakeSnap) ReadChunk(ctx context.Context, c cdc.Chunk, emit func([]cdc.Row) error) error {
	f.s.mu.Lock()
	f.s.read = append(f.s.read, c.ID)
	f.s.mu.Unlock()
	return emit(f.s.rows[c.ID])
}
func (f *fakeSnap) Close() error { return nil }

// resumableSnap emits a chunk one row at a time; the cursor after a row is
// "after:<id>", which a resumed read skips past.
type resumableSnap struct{ fakeSnap }

func (f *resumableSnap) ReadChunkFrom(ctx context.Context, c cdc.Chunk, cursor []byte, emit func([]cdc.Row, []byte) error) error {
	f.s.mu.Lock()
	if f.s.cursors == nil {
		f.s.cursors = map[string]string{}
	}
	f.s.cursors[c.ID] = string(cursor)
	f.s.mu.Unlock()
	rows := f.s.rows[c.ID]
	for i, r := range rows {
		if cursor != nil && string(cursor) >= "after:"+r["id"].(string) {
			continue
		}
		var next []byte
		if i < len(rows)-1 {
			next = []byte("after:" + r["id"].(string))
		}
		if err := emit([]cdc.Row{r}, next); err != nil {
			return err
		}
	}
	return nil
}

type fakeSink struct {
	rec      *recorder
	failLoad string // chunk rows whose first "id" equals this fail
	failNext bool
	// applying, when set, makes the next Apply signal it and then block until
	// release is closed; applyCtxErr records its context's state at that point.
	applying, release chan struct{}
	applyCtxErr       error
	mu                sync.Mutex
	rows              map[string]int
	cleared           []string
}

func (k *fakeSink) Prepare(context.Context, []cdc.Table) error {
	k.rec.add(event{kind: "prepare"})
	return nil
}
func (k *fakeSink) Load(_ context.Context, table string, rows []cdc.Row) error {
	if k.failLoad != "" && rows[0]["id"] == k.failLoad {
		return errors.New("disk full")
	}
	k.mu.Lock()
	if k.rows == nil {
		k.rows = map[string]int{}
	}
	k.rows[table] += len(rows)
	k.mu.Unlock()
	k.rec.add(event{kind: "load", n: len(rows)})
	return nil
}
func (k *fakeSink) Apply(ctx context.Context, changes []cdc.Change) error {
	if k.applying != nil {
		close(k.applying)
		k.applying = nil
		<-k.release
		k.applyCtxErr = ctx.Err()
	}
	if k.failNext {
		return errors.New("target went away")
	}
	k.rec.add(event{kind: "apply", n: len(changes)})
	return nil
}
func (k *fakeSink) Clear(_ context.Context, tables []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cleared = append(k.cleared, tables...)
	return nil
}
func (k *fakeSink) Close() error { return nil }

type memCheckpoints struct {
	rec *recorder
	mu  sync.Mutex
	m   map[string]checkpoint.Checkpoint
}

func (c *memCheckpoints) Load(_ context.Context, p string) (checkpoint.Checkpoint, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp, ok := c.m[p]
	if !ok {
		return cp, checkpoint.ErrNotFound
	}
	return cp, nil
}
func (c *memCheckpoints) Save(_ context.Context, cp checkpoint.Checkpoint) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]checkpoint.Checkpoint{}
	}
	if old, ok := c.m[cp.Pipeline]; ok && old.Seq > cp.Seq {
		return checkpoint.ErrStale
	}
	c.m[cp.Pipeline] = cp
	if c.rec != nil && cp.Load == nil && cp.Position != nil {
		c.rec.add(event{kind: "save", pos: binary.BigEndian.Uint64(cp.Position)})
	}
	return nil
}
func (c *memCheckpoints) Delete(_ context.Context, p string) error { delete(c.m, p); return nil }
func (c *memCheckpoints) Close() error                             { return nil }

// identity transforms nothing but drops rows whose "tenant" is "skip", so the
// filtered counting path is exercised.
type identity struct{}

func (identity) Prepare(t []cdc.Table) ([]cdc.Table, error) { return t, nil }
func (identity) Rows(_ context.Context, _ string, rows []cdc.Row) ([]cdc.Row, error) {
	return rows, nil
}
func (identity) Changes(_ context.Context, c []cdc.Change) ([]cdc.Change, error) { return c, nil }

func change(id int) cdc.Change {
	return cdc.Change{Table: "t", Op: cdc.Insert, Key: cdc.Row{"id": int64(id)}, After: cdc.Row{"id": int64(id)}}
}

func newFixture() (*Pipeline, *fakeSource, *fakeSink, *memCheckpoints, *recorder) {
	rec := &recorder{}
	src := &fakeSource{rec: rec,
		tables: []cdc.Table{{Name: "t", Key: []string{"id"}}, {Name: "u", Key: []string{"id"}}},
		chunks: map[string][]cdc.Chunk{
			"t": {{Table: "t", ID: "t1"}, {Table: "t", ID: "t2"}, {Table: "t", ID: "t3"}},
			"u": {{Table: "u", ID: "u1"}},
		},
		rows: map[string][]cdc.Row{
			"t1": {{"id": "a"}, {"id": "b"}}, "t2": {{"id": "c"}}, "t3": {{"id": "d"}, {"id": "e"}}, "u1": {{"id": "f"}},
		},
	}
	sink := &fakeSink{rec: rec}
	cps := &memCheckpoints{rec: rec}
	p := &Pipeline{Name: "p", Source: src, Sink: sink, Transform: identity{}, Checkpoints: cps,
		Options: Options{Workers: 2, FlushInterval: 5 * time.Millisecond}}
	return p, src, sink, cps, rec
}

func TestLoadWritesEveryChunkAndRecordsStartPosition(t *testing.T) {
	p, src, sink, cps, _ := newFixture()
	var progress []Progress
	var mu sync.Mutex
	p.Progress = func(pr Progress) { mu.Lock(); progress = append(progress, pr); mu.Unlock() }
	if err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sink.rows["t"] != 5 || sink.rows["u"] != 1 {
		t.Fatalf("rows written = %v, want t:5 u:1", sink.rows)
	}
	cp, err := cps.Load(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if cp.Load != nil || binary.BigEndian.Uint64(cp.Position) != 100 {
		t.Fatalf("checkpoint after load = %+v, want finished load at position 100", cp)
	}
	if !slices.Equal(sink.cleared, []string{"t", "u"}) {
		t.Fatalf("a fresh load cleared %v, want every selected table", sink.cleared)
	}
	if len(src.read) != 4 || len(progress) != 4 {
		t.Fatalf("read %d chunks, %d progress reports; want 4 each", len(src.read), len(progress))
	}
	if err := p.Load(context.Background()); !errors.Is(err, ErrAlreadyLoaded) {
		t.Fatalf("second load: %v, want ErrAlreadyLoaded", err)
	}
}

func TestLoadKilledHalfwayResumesFromFinishedChunks(t *testing.T) {
	p, _, sink, cps, _ := newFixture()
	p.Options.Workers = 1
	sink.failLoad = "d" // chunk t3 fails
	if err := p.Load(context.Background()); err == nil {
		t.Fatal("load with a failing chunk succeeded")
	}
	cp, _ := cps.Load(context.Background(), "p")
	if cp.Load == nil {
		t.Fatal("interrupted load left no progress")
	}
	done := map[string]bool{}
	for _, ids := range cp.Load.Done {
		for _, id := range ids {
			done[id] = true
		}
	}
	if done["t3"] || !done["t1"] {
		t.Fatalf("done chunks = %v; want t1 done, t3 not", done)
	}

	// Restart: a new source instance, same checkpoint store.
	p2, src2, sink2, _, _ := newFixture()
	p2.Checkpoints = cps
	if err := p2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint64(src2.resumed) != 100 {
		t.Fatalf("resumed load did not keep the first load's position: %v", src2.resumed)
	}
	for _, id := range src2.read {
		if done[id] {
			t.Errorf("chunk %s re-read after resume although it was finished", id)
		}
	}
	if len(sink2.cleared) != 0 {
		t.Fatalf("a resumed load cleared %v: finished chunks would be lost", sink2.cleared)
	}
	if !slices.Contains(src2.read, "t3") {
		t.Error("unfinished chunk t3 not read on resume")
	}
	if sink.rows["t"]+sink2.rows["t"] != 5 {
		t.Errorf("rows of t across both runs = %d, want 5", sink.rows["t"]+sink2.rows["t"])
	}
}

func TestSyncSavesBeforeAckAndOnlyAtTransactionEnds(t *testing.T) {
	p, src, _, cps, rec := newFixture()
	src.sent = make(chan struct{})
	src.batches = []cdc.Batch{
		{Changes: []cdc.Change{change(1), change(2)}, Commit: pos(110)},
		{Changes: []cdc.Change{change(3)}}, // first part of a large transaction
		{Changes: []cdc.Change{change(4)}, Commit: pos(120)},
		{Changes: []cdc.Change{change(5)}}, // a transaction still open when we stop
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Sync(ctx) }()
	<-src.sent
	waitFor(t, func() bool { cp, _ := cps.Load(ctx, "p"); return binary.BigEndian.Uint64(cp.Position) == 120 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("sync stopped with %v", err)
	}
	if binary.BigEndian.Uint64(src.startAt) != 100 {
		t.Fatalf("stream started at %v, want the load's position 100", src.startAt)
	}
	saved := map[uint64]int{}
	for i, e := range rec.list() {
		switch e.kind {
		case "save":
			saved[e.pos] = i
		case "ack":
			si, ok := saved[e.pos]
			if !ok || si > i {
				t.Fatalf("ack of %d at event %d before its checkpoint was saved", e.pos, i)
			}
			if e.pos != 110 && e.pos != 120 {
				t.Fatalf("acked %d, which is not a transaction end", e.pos)
			}
		}
	}
	cp, _ := cps.Load(context.Background(), "p")
	if got := binary.BigEndian.Uint64(cp.Position); got != 120 {
		t.Fatalf("final checkpoint at %d, want 120 (the open transaction must not be checkpointed)", got)
	}
	applied := 0
	for _, e := range rec.list() {
		if e.kind == "apply" {
			applied += e.n
		}
	}
	if applied != 5 {
		t.Fatalf("applied %d changes, want 5 (the stop must flush the batch in hand)", applied)
	}
}

func TestSyncDoesNotCheckpointWhatTheSinkFailedToApply(t *testing.T) {
	p, src, sink, cps, rec := newFixture()
	if err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	sink.failNext = true
	src.batches = []cdc.Batch{{Changes: []cdc.Change{change(1)}, Commit: pos(130)}}
	err := p.Sync(context.Background())
	if err == nil {
		t.Fatal("sync succeeded although the sink failed")
	}
	cp, _ := cps.Load(context.Background(), "p")
	if binary.BigEndian.Uint64(cp.Position) != 100 {
		t.Fatalf("checkpoint moved to %x although the batch was not applied", cp.Position)
	}
	for _, e := range rec.list() {
		if e.kind == "ack" {
			t.Fatalf("source acknowledged %d although nothing was applied", e.pos)
		}
	}
}

func TestRunWorkersStopsAtFirstError(t *testing.T) {
	var mu sync.Mutex
	ran := 0
	items := make([]int, 100)
	for i := range items {
		items[i] = i
	}
	err := runWorkers(context.Background(), 3, items, func(_ context.Context, i int) error {
		mu.Lock()
		ran++
		mu.Unlock()
		if i == 5 {
			return fmt.Errorf("item %d failed", i)
		}
		return nil
	})
	if err == nil || err.Error() != "item 5 failed" {
		t.Fatalf("err = %v, want item 5 failed", err)
	}
	if ran >= 100 {
		t.Fatalf("all %d items ran after an early failure", ran)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakePublisher records what the Publisher received, as "publish" events.
type fakePublisher struct {
	fakeSink
	fail bool
}

func (f *fakePublisher) Load(_ context.Context, _ string, rows []cdc.Row) error {
	f.rec.add(event{kind: "publish-load", n: len(rows)})
	return nil
}
func (f *fakePublisher) Apply(_ context.Context, changes []cdc.Change) error {
	if f.fail {
		return errors.New("broker unreachable")
	}
	f.rec.add(event{kind: "publish", n: len(changes)})
	return nil
}

// The publisher gets every batch before the target, and a checkpoint (and the
// source ack) only ever follows a delivered publish: a crash re-publishes, never
// skips.
func TestSyncPublishesBeforeApplyAndCheckpoint(t *testing.T) {
	p, src, _, cps, rec := newFixture()
	p.Publisher = &fakePublisher{fakeSink: fakeSink{rec: rec}}
	src.sent = make(chan struct{})
	src.batches = []cdc.Batch{
		{Changes: []cdc.Change{change(1), change(2)}, Commit: pos(110)},
		{Changes: []cdc.Change{change(3)}, Commit: pos(120)},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Sync(ctx) }()
	<-src.sent
	waitFor(t, func() bool { cp, _ := cps.Load(ctx, "p"); return binary.BigEndian.Uint64(cp.Position) == 120 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	published, applied, loaded := 0, 0, 0
	for _, e := range rec.list() {
		switch e.kind {
		case "publish-load":
			loaded += e.n
		case "publish":
			published += e.n
		case "apply":
			applied += e.n
			if published < applied {
				t.Fatalf("target applied %d changes but only %d were published", applied, published)
			}
		case "save":
			if e.pos > 100 && (published < applied || published == 0) {
				t.Fatalf("checkpoint %d saved before its changes were published", e.pos)
			}
		}
	}
	if published != 3 || applied != 3 || loaded != 6 {
		t.Fatalf("published %d, applied %d, snapshot rows published %d; want 3, 3, 6", published, applied, loaded)
	}

	// A failed publish stops the pipeline before the target and the checkpoint.
	p2, src2, _, cps2, rec2 := newFixture()
	p2.Publisher = &fakePublisher{fakeSink: fakeSink{rec: rec2}}
	if err := p2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	p2.Publisher.(*fakePublisher).fail = true
	src2.batches = []cdc.Batch{{Changes: []cdc.Change{change(1)}, Commit: pos(130)}}
	if err := p2.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "broker unreachable") {
		t.Fatalf("sync with a failing publisher: %v", err)
	}
	cp, _ := cps2.Load(context.Background(), "p")
	if binary.BigEndian.Uint64(cp.Position) != 100 {
		t.Fatal("checkpoint moved although the publish failed")
	}
	for _, e := range rec2.list() {
		if e.kind == "apply" || e.kind == "ack" {
			t.Fatalf("%s after a failed publish", e.kind)
		}
	}
}

// A load killed inside a chunk of a resumable snapshot resumes from the chunk's
// last written cursor: no row of it is written twice, and the stored cursor is
// sealed (it may hold a production key).
func TestLoadResumesInsideAChunk(t *testing.T) {
	defer func(d time.Duration) { cursorSaveInterval = d }(cursorSaveInterval)
	cursorSaveInterval = 0
	p, src, sink, cps, _ := newFixture()
	src.resumable = true
	p.CursorKey = CursorKey([]byte("a secret of at least sixteen bytes"))
	p.Options.Workers = 1
	sink.failLoad = "e" // chunk t3 holds d, e: fails after d was written
	if err := p.Load(context.Background()); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("first load: %v", err)
	}
	cp, _ := cps.Load(context.Background(), "p")
	sealed := cp.Load.Cursors["t"]["t3"]
	if sealed == nil || strings.Contains(string(sealed), "after:d") {
		t.Fatalf("cursor of the unfinished chunk: %q (want sealed, not plaintext)", sealed)
	}
	sink.failLoad = ""
	if err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if src.cursors["t3"] != "after:d" {
		t.Fatalf("the resumed chunk started at %q, want after:d", src.cursors["t3"])
	}
	if sink.rows["t"] != 5 || sink.rows["u"] != 1 {
		t.Fatalf("rows written = %v, want t:5 u:1 (each once)", sink.rows)
	}
	cp, _ = cps.Load(context.Background(), "p")
	if cp.Load != nil {
		t.Fatalf("load not complete: %+v", cp.Load)
	}

	// Under another secret the cursor does not open: the chunk is read whole.
	p2, src2, sink2, _, _ := newFixture()
	src2.resumable = true
	p2.CursorKey, p2.Options.Workers = p.CursorKey, 1
	sink2.failLoad = "e"
	_ = p2.Load(context.Background())
	p2.CursorKey = CursorKey([]byte("another secret, sixteen bytes+"))
	sink2.failLoad = ""
	if err := p2.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if src2.cursors["t3"] != "" || sink2.rows["t"] != 6 {
		t.Fatalf("with a changed secret: started at %q, rows %v; want the whole chunk again", src2.cursors["t3"], sink2.rows)
	}
}

// A stop that arrives while a batch is being written lets that write finish
// (its transaction is not cut short) and publishes its events once.
func TestStopDuringApplyPublishesOnce(t *testing.T) {
	p, src, sink, cps, rec := newFixture()
	p.Publisher = &fakePublisher{fakeSink: fakeSink{rec: rec}}
	if err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	applying, release := make(chan struct{}), make(chan struct{})
	sink.applying, sink.release = applying, release
	src.batches = []cdc.Batch{{Changes: []cdc.Change{change(1), change(2)}, Commit: pos(150)}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Sync(ctx) }()
	<-applying
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Sync returned (%v) while its last batch was still being written", err)
	case <-time.After(50 * time.Millisecond): // a negative check: nothing to poll
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if sink.applyCtxErr != nil {
		t.Fatalf("the stop cancelled the write in progress: %v", sink.applyCtxErr)
	}
	published, applied := 0, 0
	for _, e := range rec.list() {
		switch e.kind {
		case "publish":
			published += e.n
		case "apply":
			applied += e.n
		}
	}
	if published != 2 || applied != 2 {
		t.Fatalf("published %d, applied %d changes; want 2 and 2", published, applied)
	}
	if cp, _ := cps.Load(context.Background(), "p"); binary.BigEndian.Uint64(cp.Position) != 150 {
		t.Fatal("the final flush did not checkpoint the batch")
	}
}

// signalling passes changes through and reports each batch it transforms.
type signalling struct {
	identity
	batches chan int
}

func (s signalling) Changes(_ context.Context, c []cdc.Change) ([]cdc.Change, error) {
	s.batches <- len(c)
	return c, nil
}

// Transforming the next batch overlaps writing the previous one; a schema change
// still waits until every earlier batch is written before the target changes.
func TestStreamOverlapsTransformWithApplyAndOrdersSchemaChanges(t *testing.T) {
	p, src, sink, cps, rec := newFixture()
	if err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	transformed := make(chan int, 10)
	p.Transform = signalling{batches: transformed}
	p.Options.BatchSize = 2
	applying, release := make(chan struct{}), make(chan struct{})
	sink.applying, sink.release = applying, release
	src.batches = []cdc.Batch{
		{Changes: []cdc.Change{change(1), change(2)}, Commit: pos(160)},
		{Changes: []cdc.Change{change(3), change(4)}, Commit: pos(170)},
		{Schema: []cdc.Table{{Name: "t", Key: []string{"id"}}}, Changes: []cdc.Change{change(5), change(6)}, Commit: pos(180)},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Sync(ctx) }()
	<-transformed // the first batch
	<-applying    // ...is being written, and blocks there
	select {
	case <-transformed: // the second batch is transformed meanwhile
	case err := <-done:
		t.Fatalf("Sync ended: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the next batch was not transformed while the previous one was written")
	}
	before := len(rec.list())
	close(release)
	waitFor(t, func() bool { cp, _ := cps.Load(ctx, "p"); return binary.BigEndian.Uint64(cp.Position) == 180 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range rec.list()[before:] {
		if e.kind == "apply" || e.kind == "prepare" || e.kind == "ack" {
			kinds = append(kinds, e.kind)
		}
	}
	// The blocked first apply returns (apply, ack), the second batch follows, and
	// only then does the schema change reach the target, before the third batch.
	if got := strings.Join(kinds, " "); got != "apply ack apply ack prepare apply ack" {
		t.Fatalf("events after release: %s", got)
	}
}

// After the pipeline lock is lost another process may own the pipeline: the batch
// in hand must not be written on the way out.
func TestLostLockSkipsTheFinalFlush(t *testing.T) {
	p, src, _, _, rec := newFixture()
	if err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.Options.FlushInterval = time.Hour
	src.sent = make(chan struct{})
	src.batches = []cdc.Batch{{Changes: []cdc.Change{change(1)}, Commit: pos(140)}}
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Sync(ctx) }()
	<-src.sent
	cancel(checkpoint.ErrLockLost)
	if err := <-done; !errors.Is(err, checkpoint.ErrLockLost) {
		t.Fatalf("Sync after a lost lock returned %v", err)
	}
	for _, e := range rec.list() {
		if e.kind == "apply" {
			t.Fatal("the batch in hand was applied after the lock was lost")
		}
	}
}

// A table added to the config after the initial load would only ever get new
// changes, never its existing rows: sync refuses and names reset.
func TestTableAddedAfterLoadIsRefused(t *testing.T) {
	p, _, _, cps, _ := newFixture()
	if err := p.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	p2, src2, _, _, _ := newFixture()
	p2.Checkpoints = cps
	src2.tables = append(src2.tables, cdc.Table{Name: "v", Key: []string{"id"}})
	err := p2.Sync(context.Background())
	if !errors.Is(err, ErrTablesAdded) || !strings.Contains(err.Error(), "v") || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("Sync with a new table: %v", err)
	}
}
