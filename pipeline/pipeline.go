// Package pipeline runs one pipeline: source → transform → sink → checkpoint →
// source acknowledgement. It owns the order of those steps, which is where data is
// lost when it is wrong:
//
//  1. the start position is captured before the snapshot reads a row (Source);
//  2. a checkpoint is saved only after the sink made the batch durable;
//  3. the source is acknowledged only after the checkpoint is durable;
//  4. checkpoints are taken only at transaction ends (Batch.Commit).
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/checkpoint"
	"github.com/understudy/understudy/sinks"
)

// Transformer is what the pipeline needs from the transform package: compile the
// rules for the source schemas, then rewrite snapshot rows and stream changes.
type Transformer interface {
	// Prepare compiles the rules for each table and returns the target schema of
	// each (dropped columns removed). It fails when a rule does not fit its table.
	Prepare(tables []cdc.Table) ([]cdc.Table, error)
	// Rows transforms snapshot rows of one prepared table, dropping filtered rows.
	Rows(ctx context.Context, table string, rows []cdc.Row) ([]cdc.Row, error)
	// Changes transforms stream changes, dropping or rewriting filtered ones.
	Changes(ctx context.Context, changes []cdc.Change) ([]cdc.Change, error)
}

// Options tune a pipeline. Zero values take the defaults.
type Options struct {
	// BatchSize bounds the changes applied in one sink transaction (default 5000).
	BatchSize int
	// FlushInterval bounds how long a partial batch waits (default 100 ms): the
	// latency floor of the replica.
	FlushInterval time.Duration
	// Workers is the number of parallel snapshot chunk readers (default 4).
	Workers int
}

func (o Options) withDefaults() Options {
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 100 * time.Millisecond
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	return o
}

// Pipeline is one source store → one target store with its own rules and
// checkpoint. Exported fields configure it; set them before calling Load or Sync.
type Pipeline struct {
	Name      string
	Source    cdc.Source
	Sink      sinks.Sink
	Transform Transformer
	// Publisher, when set, receives every transformed batch before Sink does
	// (change events to Kafka, config publish:). The checkpoint covers a batch
	// only after both delivered it, so a crash re-publishes (at-least-once) and
	// never skips.
	Publisher sinks.Sink
	// Checkpoints stores progress. When nil and the sink is a
	// TransactionalCheckpointer, checkpoints live in the target's transactions.
	Checkpoints checkpoint.Store
	Metrics     *Metrics     // optional
	Log         *slog.Logger // optional
	// CursorKey seals the cursors of unfinished snapshot chunks before they are
	// checkpointed (see CursorKey); without it a killed load rereads unfinished
	// chunks from their start.
	CursorKey []byte
	// Progress, when set, is called as snapshot chunks finish (for progress bars).
	Progress func(Progress)
	Options  Options

	// busy is the time the current stream spent in each stage (stageTransform,
	// stageApply), for the stop log line: whichever is close to
	// the elapsed time is what limits throughput.
	busy [2]atomic.Int64

	tables   []cdc.Table // source schemas from Source.Open, updated by schema batches
	txcp     sinks.TransactionalCheckpointer
	onStream func() // called once streaming has started (Run's retry policy)
}

// Progress reports the initial load's progress.
type Progress struct {
	Table        string
	ChunksDone   int
	ChunksTotal  int
	RowsWritten  int64 // for the whole load
	TableRows    int64 // rows of Table written by this process
	EstimateRows int64 // estimated rows of Table, 0 when unknown
}

// ErrAlreadyLoaded is returned by Load when the pipeline's initial load completed
// before; `understudy reset` reloads.
var ErrAlreadyLoaded = errors.New("the initial load of this pipeline is already complete; run `understudy sync` to stream, or `understudy reset` to reload")

func (p *Pipeline) log() *slog.Logger {
	if p.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return p.Log.With("pipeline", p.Name)
}

// open connects the source, compiles the rules and prepares the target. Each step
// validates before anything is written: a target that is not a marked replica is
// refused by Sink.Prepare before any table is created.
func (p *Pipeline) open(ctx context.Context) error {
	p.Options = p.Options.withDefaults()
	tables, err := p.Source.Open(ctx)
	if err != nil {
		return err
	}
	p.tables = tables
	targets, err := p.Transform.Prepare(tables)
	if err != nil {
		return err
	}
	if err := p.Sink.Prepare(ctx, targets); err != nil {
		return err
	}
	if p.Publisher != nil {
		if err := p.Publisher.Prepare(ctx, targets); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	if tc, ok := p.Sink.(sinks.TransactionalCheckpointer); ok && p.Checkpoints == nil {
		p.txcp = tc
		p.Checkpoints = tc.Checkpoints()
	}
	if p.Checkpoints == nil {
		return errors.New("no checkpoint store configured and the target cannot hold checkpoints")
	}
	return nil
}

// Load runs the initial bulk load (or resumes an interrupted one) and records the
// position a later Sync continues from. It returns ErrAlreadyLoaded when the load
// finished before.
func (p *Pipeline) Load(ctx context.Context) error {
	cp, loaded, err := p.start(ctx)
	if err != nil {
		return err
	}
	if loaded {
		return ErrAlreadyLoaded
	}
	_, err = p.load(ctx, cp)
	return err
}

// Sync loads when the pipeline has no finished load, then streams until ctx is
// cancelled, which stops it cleanly: the batch in hand is applied and checkpointed.
func (p *Pipeline) Sync(ctx context.Context) error {
	cp, loaded, err := p.start(ctx)
	if err != nil {
		return err
	}
	if !loaded {
		p.log().Info("initial load starting")
		if cp, err = p.load(ctx, cp); err != nil {
			return err
		}
	}
	return p.stream(ctx, cp)
}

// start opens the pipeline and reads its checkpoint: a fresh one when there is
// none; loaded reports whether the initial load completed.
func (p *Pipeline) start(ctx context.Context) (cp checkpoint.Checkpoint, loaded bool, err error) {
	if err := p.open(ctx); err != nil {
		return cp, false, err
	}
	cp, err = p.Checkpoints.Load(ctx, p.Name)
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
		return checkpoint.Checkpoint{Pipeline: p.Name}, false, nil
	case err != nil:
		return cp, false, fmt.Errorf("reading checkpoint: %w", err)
	}
	if cp.Load == nil && cp.Tables != nil {
		var added []string
		for _, t := range p.tables {
			if !slices.Contains(cp.Tables, t.Name) {
				added = append(added, t.Name)
			}
		}
		if len(added) > 0 {
			return cp, true, fmt.Errorf("table(s) %s were added to tables: after the initial load, which streaming alone cannot backfill; run `understudy reset` to reload the pipeline: %w",
				strings.Join(added, ", "), ErrTablesAdded)
		}
	}
	return cp, cp.Load == nil, nil
}

// ErrTablesAdded means the config selects tables the initial load did not cover.
var ErrTablesAdded = errors.New("tables added after the initial load")

// save stores the next checkpoint and, once it is durable, lets the source release
// what it covers.
func (p *Pipeline) save(ctx context.Context, cp *checkpoint.Checkpoint) error {
	cp.Seq++
	cp.Pipeline = p.Name
	cp.SavedAt = time.Now().UTC()
	if err := p.Checkpoints.Save(ctx, *cp); err != nil {
		return fmt.Errorf("saving checkpoint: %w", err)
	}
	return nil
}
