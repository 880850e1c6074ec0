package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/checkpoint"
)

// streamWorks is how long a source must stream without failing before its
// later failures are retried rather than reported.
const streamWorks = 5 * time.Second

// stopTimeout bounds the final flush after a stop signal.
const stopTimeout = 10 * time.Second

// stream applies the source's log from cp.Position until ctx is cancelled.
//
// Three stages run concurrently, each in order, so reading, transforming and
// writing overlap instead of taking turns:
//
//	source.Stream ──batches──▶ gather + transform ──job──▶ applier: publish, apply
//	 (goroutine)                 (this goroutine)           + checkpoint, then ack
//
// Batches from the source are gathered until Options.BatchSize changes or
// Options.FlushInterval, transformed, and handed to the applier, which writes
// each job in one sink transaction. At most one job waits while another is
// written, which bounds memory and lets a slow target push back on the source.
// A batch may end mid-transaction (large transactions arrive in parts); the
// checkpoint then stays at the last transaction end inside it, and a restart
// re-applies the tail, which is harmless because sinks apply idempotently.
func (p *Pipeline) stream(ctx context.Context, cp checkpoint.Checkpoint) error {
	srcCtx, stopSource := context.WithCancel(context.WithoutCancel(ctx))
	in := make(chan cdc.Batch, 16)
	srcErr := make(chan error, 1)
	go func() { srcErr <- p.Source.Stream(srcCtx, cp.Position, in) }()
	defer func() {
		stopSource()
		// Drain so a source blocked on send can see the cancellation and return.
		for {
			select {
			case <-in:
			case <-srcErr:
				return
			}
		}
	}()

	ap := p.startApplier(ctx, cp)
	defer ap.abort()

	p.log().Info("streaming", "checkpoint_seq", cp.Seq)
	// Streaming counts as working (for Run's retry policy) once the source has
	// sent a batch or run for streamWorks without failing: an error before that is
	// a setup problem (permissions, a slot held elsewhere) that retrying won't fix.
	started, works := time.Now(), false
	for i := range p.busy { // the stop line reports this stream, not earlier attempts
		p.busy[i].Store(0)
	}
	working := func() {
		if !works && p.onStream != nil {
			works = true
			p.onStream()
		}
	}
	var (
		pending    []cdc.Change
		commit     cdc.Position // last transaction end inside pending
		commitTime time.Time
	)
	// flush transforms pending and hands it to the applier. It does not wait for
	// the write; ap.wait does.
	flush := func(ctx context.Context) error {
		if len(pending) == 0 && commit == nil {
			return nil
		}
		start := time.Now()
		out, err := p.Transform.Changes(ctx, pending)
		p.stageBusy(stageTransform, time.Since(start))
		if err != nil {
			return err
		}
		if err := ap.submit(ctx, job{changes: out, read: len(pending), commit: commit, commitTime: commitTime, start: start}); err != nil {
			return err
		}
		// A fresh slice: the job may alias pending (a Transformer may return
		// its input), and the applier reads it while the next batch gathers.
		pending, commit = nil, nil
		return nil
	}

	// stopOr turns a step that failed because a stop signal cancelled it midway
	// into the graceful stop, which transforms the same batch again with a fresh
	// deadline; any other error is returned.
	stopOr := func(err error) error {
		var ae applyError
		if ctx.Err() != nil && !errors.As(err, &ae) {
			return p.finish(ctx, flush, ap, started)
		}
		return err
	}

	ticker := time.NewTicker(p.Options.FlushInterval)
	defer ticker.Stop()
	for {
		select {
		case b := <-in:
			working()
			if len(b.Schema) > 0 {
				// Apply what was read under the old schema before the target changes.
				if err := flush(ctx); err != nil {
					return stopOr(err)
				}
				if err := ap.wait(ctx); err != nil {
					return stopOr(err)
				}
				if err := p.evolve(ctx, b.Schema); err != nil {
					return err
				}
			}
			pending = append(pending, b.Changes...)
			if b.Commit != nil {
				commit, commitTime = b.Commit, b.CommitTime
			}
			if len(pending) >= p.Options.BatchSize {
				if err := flush(ctx); err != nil {
					return stopOr(err)
				}
			}
		case <-ticker.C:
			if time.Since(started) > streamWorks {
				working()
			}
			if err := flush(ctx); err != nil {
				return stopOr(err)
			}
		case <-ap.failed:
			return ap.err
		case err := <-srcErr:
			srcErr <- err // for the deferred drain
			if ctx.Err() == nil {
				// Keep what was read: everything before the failure is valid.
				ferr := flush(ctx)
				if ferr == nil {
					ferr = ap.wait(ctx)
				}
				if ferr != nil {
					return errors.Join(err, ferr)
				}
				if err == nil {
					err = errors.New("source stream ended unexpectedly")
				}
				return fmt.Errorf("source stream: %w", err)
			}
			return p.finish(ctx, flush, ap, started)
		case <-ctx.Done():
			return p.finish(ctx, flush, ap, started)
		}
	}
}

// finish writes the batch in hand after a stop signal and waits for the applier,
// with a fresh deadline since ctx is already cancelled, so a graceful stop loses
// no progress. started is when this stream began, for the stop log line.
func (p *Pipeline) finish(ctx context.Context, flush func(context.Context) error, ap *applier, started time.Time) error {
	if cause := context.Cause(ctx); errors.Is(cause, checkpoint.ErrLockLost) {
		// Another process may own the pipeline now: writing the batch in hand
		// could overwrite its newer rows. The checkpoint did not cover it, so the
		// new owner applies it again. (The applier was cancelled too.)
		return cause
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	err := flush(fctx)
	if err == nil {
		err = ap.wait(fctx)
	}
	if err != nil {
		return fmt.Errorf("final flush on stop: %w", err)
	}
	p.log().Info("stopped cleanly", "streamed", time.Since(started).Round(time.Millisecond).String(),
		"transform_busy", time.Duration(p.busy[stageTransform].Load()).Round(time.Millisecond).String(),
		"apply_busy", time.Duration(p.busy[stageApply].Load()).Round(time.Millisecond).String())
	return nil
}

// Stages of the stream whose busy time is measured (Pipeline.busy, and the
// understudy_stage_busy_seconds_total metric).
const (
	stageTransform = iota
	stageApply
)

var stageNames = [...]string{stageTransform: "transform", stageApply: "apply"}

func (p *Pipeline) stageBusy(stage int, d time.Duration) {
	p.busy[stage].Add(int64(d))
	p.Metrics.stageBusy(p.Name, stageNames[stage], d)
}

// job is one transformed batch for the applier.
type job struct {
	changes    []cdc.Change
	read       int          // changes read from the source (before filters)
	commit     cdc.Position // last transaction end in the batch; nil: none
	commitTime time.Time
	start      time.Time // when the batch's transform began, for the latency metric
}

// applyError marks errors of the applier (the write failed), which a stop signal
// must not turn into a retry: the applier already used its own deadline.
type applyError struct{ err error }

func (e applyError) Error() string { return e.err.Error() }
func (e applyError) Unwrap() error { return e.err }

// errWriterStopped is returned to a caller that hands work to an applier which
// already stopped (its stop deadline passed).
var errWriterStopped = applyError{errors.New("the target writer stopped before the batch was written")}

// applier writes jobs in order in its own goroutine: publish, then apply with the
// checkpoint, then acknowledge the source. It owns the checkpoint after start.
//
// Its context is not the stream's: a stop signal lets the job being written
// finish (within stopTimeout) rather than cutting its transaction short, so a
// published batch is not published again by the final flush. Only a lost lock
// cancels it at once.
type applier struct {
	jobs   chan job
	idle   chan chan struct{} // wait requests: closed when every earlier job is done
	failed chan struct{}      // closed when a job failed; err is then set
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

func (p *Pipeline) startApplier(ctx context.Context, cp checkpoint.Checkpoint) *applier {
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ap := &applier{
		jobs:   make(chan job, 1),
		idle:   make(chan chan struct{}),
		failed: make(chan struct{}),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	// A stop gives the write in progress stopTimeout to finish; a lost lock none.
	stopWatch := context.AfterFunc(ctx, func() {
		if errors.Is(context.Cause(ctx), checkpoint.ErrLockLost) {
			cancel()
			return
		}
		time.AfterFunc(stopTimeout, cancel)
	})
	run := func(j job) bool {
		began := time.Now()
		next, err := p.applyJob(actx, cp, j)
		p.stageBusy(stageApply, time.Since(began))
		if err != nil {
			ap.err = applyError{err}
			close(ap.failed)
			return false
		}
		cp = next
		return true
	}
	go func() {
		defer close(ap.done)
		defer stopWatch()
		for {
			select {
			case j := <-ap.jobs:
				if !run(j) {
					return
				}
			case w := <-ap.idle:
				// Only the stream goroutine submits and waits, so nothing is
				// submitted meanwhile: finish what is queued, then answer.
				for len(ap.jobs) > 0 {
					if !run(<-ap.jobs) {
						return
					}
				}
				close(w)
			case <-actx.Done():
				return
			}
		}
	}()
	return ap
}

// submit queues a job, waiting while the previous one is still queued.
func (ap *applier) submit(ctx context.Context, j job) error {
	select {
	case ap.jobs <- j:
		return nil
	case <-ap.failed:
		return ap.err
	case <-ap.done:
		return errWriterStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wait returns once every submitted job is written and checkpointed.
func (ap *applier) wait(ctx context.Context) error {
	w := make(chan struct{})
	select {
	case ap.idle <- w:
	case <-ap.failed:
		return ap.err
	case <-ap.done:
		return errWriterStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	// The applier answers only after every job submitted before the request.
	select {
	case <-w:
		return nil
	case <-ap.failed:
		return ap.err
	case <-ap.done:
		return errWriterStopped
	case <-ctx.Done():
		return ctx.Err()
	}
}

// abort stops the applier without waiting for queued jobs (they are not
// checkpointed, so a restart applies them again) and waits for it to exit.
func (ap *applier) abort() {
	ap.cancel()
	<-ap.done
}

// applyJob publishes, writes and checkpoints one job, then acknowledges the source.
func (p *Pipeline) applyJob(ctx context.Context, cp checkpoint.Checkpoint, j job) (checkpoint.Checkpoint, error) {
	// Publish first: the target's apply may carry the checkpoint (ApplyAndSave),
	// which must not cover undelivered events.
	if err := p.publish(ctx, j.changes); err != nil {
		return cp, err
	}
	if j.commit == nil {
		if err := p.Sink.Apply(ctx, j.changes); err != nil {
			return cp, fmt.Errorf("applying %d changes: %w", len(j.changes), err)
		}
	} else {
		next := cp
		next.Seq++
		next.Position = j.commit
		next.SourceTime = j.commitTime
		next.SavedAt = time.Now().UTC()
		var err error
		if p.txcp != nil {
			// Changes and checkpoint in one target transaction: exactly-once.
			err = p.txcp.ApplyAndSave(ctx, j.changes, next)
		} else if err = p.Sink.Apply(ctx, j.changes); err == nil {
			err = p.Checkpoints.Save(ctx, next)
		}
		if err != nil {
			return cp, fmt.Errorf("applying %d changes: %w", len(j.changes), err)
		}
		cp = next
		// Only now, with the checkpoint durable, may the source release the log.
		if err := p.Source.Ack(ctx, j.commit); err != nil {
			return cp, fmt.Errorf("acknowledging to source: %w", err)
		}
		p.Metrics.lag(p.Name, j.commitTime)
	}
	p.Metrics.applied(p.Name, len(j.changes), j.read-len(j.changes), time.Since(j.start))
	return cp, nil
}

// publish delivers transformed changes to the Publisher, if any; it returns once
// they are acknowledged.
func (p *Pipeline) publish(ctx context.Context, changes []cdc.Change) error {
	if p.Publisher == nil || len(changes) == 0 {
		return nil
	}
	if err := p.Publisher.Apply(ctx, changes); err != nil {
		return fmt.Errorf("publishing %d changes: %w", len(changes), err)
	}
	return nil
}

// evolve takes a schema change from the source: recompile the rules and let the
// sink add what the target lacks. The applier is idle when it runs.
func (p *Pipeline) evolve(ctx context.Context, changed []cdc.Table) error {
	for _, t := range changed {
		replaced := false
		for i := range p.tables {
			if p.tables[i].Name == t.Name {
				p.tables[i], replaced = t, true
			}
		}
		if !replaced {
			p.tables = append(p.tables, t)
		}
	}
	targets, err := p.Transform.Prepare(changed)
	if err != nil {
		return fmt.Errorf("schema change: %w", err)
	}
	if err := p.Sink.Prepare(ctx, targets); err != nil {
		return fmt.Errorf("schema change: %w", err)
	}
	if p.Publisher != nil {
		if err := p.Publisher.Prepare(ctx, targets); err != nil {
			return fmt.Errorf("schema change: publish: %w", err)
		}
	}
	p.log().Info("schema change applied", "tables", len(changed))
	return nil
}
