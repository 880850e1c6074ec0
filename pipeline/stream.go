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
// Batches from the source are gathered until Options.BatchSize changes or
// Options.FlushInterval, then transformed and applied in one sink transaction. A
// batch may end mid-transaction (large transactions arrive in parts); the checkpoint
// then stays at the last transaction end inside it, and a restart re-applies the
// tail, which is harmless because sinks apply idempotently.
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

	p.log().Info("streaming", "checkpoint_seq", cp.Seq)
	// Streaming counts as working (for Run's retry policy) once the source has
	// sent a batch or run for streamWorks without failing: an error before that is
	// a setup problem (permissions, a slot held elsewhere) that retrying won't fix.
	started, works := time.Now(), false
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
		// published is set once pending reached the Publisher, so the retry
		// of a flush that a stop signal cut short (stopOr → finish) does not
		// send the same events twice. A failed flush otherwise ends stream,
		// so pending never grows while published is set.
		published bool
	)
	flush := func(ctx context.Context) error {
		if len(pending) == 0 && commit == nil {
			return nil
		}
		start := time.Now()
		out, err := p.Transform.Changes(ctx, pending)
		if err != nil {
			return err
		}
		// Publish first: the target's apply may carry the checkpoint
		// (ApplyAndSave), which must not cover undelivered events.
		if !published {
			if err := p.publish(ctx, out); err != nil {
				return err
			}
			published = true
		}
		if commit != nil {
			next := cp
			next.Seq++
			next.Position = commit
			next.SourceTime = commitTime
			next.SavedAt = time.Now().UTC()
			if p.txcp != nil {
				// Changes and checkpoint in one target transaction: exactly-once.
				err = p.txcp.ApplyAndSave(ctx, out, next)
			} else if err = p.Sink.Apply(ctx, out); err == nil {
				err = p.Checkpoints.Save(ctx, next)
			}
			if err != nil {
				return fmt.Errorf("applying %d changes: %w", len(out), err)
			}
			cp = next
			// Only now, with the checkpoint durable, may the source release the log.
			if err := p.Source.Ack(ctx, commit); err != nil {
				return fmt.Errorf("acknowledging to source: %w", err)
			}
			p.Metrics.lag(p.Name, commitTime)
		} else if err := p.Sink.Apply(ctx, out); err != nil {
			return fmt.Errorf("applying %d changes: %w", len(out), err)
		}
		p.Metrics.applied(p.Name, len(out), len(pending)-len(out), time.Since(start))
		pending, commit, published = pending[:0], nil, false
		return nil
	}

	// stopOr turns a flush that failed because a stop signal cancelled it midway
	// into the graceful stop, which applies the same batch again with a fresh
	// deadline; any other error is returned.
	stopOr := func(err error) error {
		if ctx.Err() != nil {
			return p.finish(ctx, flush)
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
		case err := <-srcErr:
			srcErr <- err // for the deferred drain
			if ctx.Err() == nil {
				// Keep what was read: everything before the failure is valid.
				if ferr := flush(ctx); ferr != nil {
					return errors.Join(err, ferr)
				}
				if err == nil {
					err = errors.New("source stream ended unexpectedly")
				}
				return fmt.Errorf("source stream: %w", err)
			}
			return p.finish(ctx, flush)
		case <-ctx.Done():
			return p.finish(ctx, flush)
		}
	}
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

// finish applies the batch in hand after a stop signal, with a fresh deadline since
// ctx is already cancelled, so a graceful stop loses no progress.
func (p *Pipeline) finish(ctx context.Context, flush func(context.Context) error) error {
	if cause := context.Cause(ctx); errors.Is(cause, checkpoint.ErrLockLost) {
		// Another process may own the pipeline now: writing the batch in hand
		// could overwrite its newer rows. The checkpoint did not cover it, so the
		// new owner applies it again.
		return cause
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	if err := flush(fctx); err != nil {
		return fmt.Errorf("final flush on stop: %w", err)
	}
	p.log().Info("stopped cleanly")
	return nil
}

// evolve takes a schema change from the source: recompile the rules and let the
// sink add what the target lacks.
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
