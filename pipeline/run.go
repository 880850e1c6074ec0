package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/checkpoint"
	"github.com/understudy/understudy/config"
	"github.com/understudy/understudy/mapping"
	"github.com/understudy/understudy/sinks"
)

// Run is the sync service for one pipeline: Sync, and after a failure that is
// worth retrying (a dropped connection once streaming had worked), Sync again with
// exponential back-off. It returns nil when ctx is cancelled (a clean stop), and the
// error when it cannot go on: a setup problem on the first attempt, a lost source
// position, a target that is not a replica, or a lost lock.
func (d *Deployment) Run(ctx context.Context, name string, lease checkpoint.Lease) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go keepLease(ctx, lease, cancel)

	backoff := time.Second
	everStreamed := false
	for {
		p, err := d.Pipeline(ctx, name)
		if err != nil {
			return err
		}
		p.onStream = func() { everStreamed = true; d.setHealth(name, nil) }
		start := time.Now()
		err = p.Sync(ctx)
		p.Close()
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause // the lease was lost
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("sync ended without a stop signal")
		}
		d.setHealth(name, err)
		if !everStreamed || permanent(err) {
			return err
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		d.Log.Warn("sync failed; retrying", "pipeline", name, "error", err.Error(), "in", backoff.String())
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// permanent errors need a person: retrying cannot fix them.
func permanent(err error) bool {
	var cfgErr *config.Error
	return errors.Is(err, cdc.ErrPositionLost) || errors.Is(err, sinks.ErrNotReplica) ||
		errors.Is(err, checkpoint.ErrStale) || errors.Is(err, ErrTablesAdded) || errors.As(err, &cfgErr)
}

// Hold keeps lease refreshed while a one-shot command (load, reset) works. The
// returned context is cancelled, with the cause, when the lock is lost, so the
// work stops before another process can take the pipeline over; call stop when
// done.
func Hold(ctx context.Context, lease checkpoint.Lease) (held context.Context, stop func()) {
	held, cancel := context.WithCancelCause(ctx)
	go keepLease(held, lease, cancel)
	return held, func() { cancel(nil) }
}

// leaseRefreshEvery is how often a held lease is refreshed (a variable for tests).
var leaseRefreshEvery = lockOwnerTTL / 6

// keepLease refreshes the pipeline lock and stops the pipeline if it is lost, so two
// processes never stream one pipeline. A failed refresh (a Redis blip) is retried
// while the lease is surely still ours; only ErrLockLost, or no successful refresh
// for two thirds of the lease, gives it up.
func keepLease(ctx context.Context, lease checkpoint.Lease, cancel context.CancelCauseFunc) {
	t := time.NewTicker(leaseRefreshEvery)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := lease.Refresh(ctx)
			switch {
			case err == nil:
				lastOK = time.Now()
			case ctx.Err() != nil:
				return
			case errors.Is(err, checkpoint.ErrLockLost):
				cancel(err)
				return
			case time.Since(lastOK) > 2*lockOwnerTTL/3:
				cancel(fmt.Errorf("%w: no refresh succeeded for %s: %v", checkpoint.ErrLockLost, time.Since(lastOK).Round(time.Second), err))
				return
			}
		}
	}
}

// ResetOptions choose what a reset does beyond the fixed steps.
type ResetOptions struct {
	// PurgeScope, when set, also drops every mapping of that scope.
	PurgeScope mapping.Scope
	// Reload runs the initial load again after clearing.
	Reload bool
}

// ResetPlan lists the steps Reset will take, for --dry-run and confirmation.
func (d *Deployment) ResetPlan(name string, opts ResetOptions) []string {
	spec, err := d.spec(name)
	if err != nil {
		return []string{err.Error()}
	}
	steps := []string{
		"refuse if a sync holds the pipeline lock",
		"delete the pipeline's checkpoint (from here on, an interrupted reset is finished by the next sync's fresh load)",
		fmt.Sprintf("clear %d target table(s) in %s (only if it is a marked understudy replica)", len(spec.Tables), config.Redacted(spec.Target)),
		fmt.Sprintf("drop source replication state of %s (slot/publication named understudy_%s), if the source keeps any", config.Redacted(spec.Source), spec.Name),
	}
	if opts.PurgeScope != "" {
		steps = append(steps, fmt.Sprintf("purge every %s-scope mapping (all pipelines share them)", opts.PurgeScope))
	}
	if opts.Reload {
		steps = append(steps, "run the initial load again; afterwards `understudy sync` continues from its position")
	}
	return steps
}

// Reset runs the reset-and-resync runbook for one pipeline. The caller holds the
// pipeline lock.
func (d *Deployment) Reset(ctx context.Context, name string, opts ResetOptions) error {
	spec, err := d.spec(name)
	if err != nil {
		return err
	}
	p, err := d.Pipeline(ctx, name)
	if err != nil {
		return err
	}
	defer p.Close()
	// The checkpoint goes first: a reset interrupted at any later step leaves no
	// checkpoint, so the next sync does a fresh load, which clears the target
	// itself. (Clearing first and failing before the checkpoint was deleted left
	// a sync streaming into empty tables.) Clear and the fresh load refuse a
	// target that is not a marked replica.
	cps := p.Checkpoints
	if cps == nil {
		cps = p.Sink.(sinks.TransactionalCheckpointer).Checkpoints()
	}
	if err := cps.Delete(ctx, name); err != nil {
		return fmt.Errorf("deleting checkpoint: %w", err)
	}
	if err := p.Sink.Clear(ctx, spec.Tables); err != nil {
		return fmt.Errorf("clearing target: %w", err)
	}
	if r, ok := p.Source.(cdc.Resetter); ok {
		if err := r.Reset(ctx); err != nil {
			return fmt.Errorf("dropping source replication state: %w", err)
		}
	}
	if opts.PurgeScope != "" {
		m, err := d.Mapper(ctx)
		if err != nil {
			return err
		}
		if err := m.Purge(ctx, opts.PurgeScope, ""); err != nil {
			return fmt.Errorf("purging %s mappings: %w", opts.PurgeScope, err)
		}
	}
	d.Log.Info("reset: target cleared, source state dropped, checkpoint deleted", "pipeline", name)
	if !opts.Reload {
		return nil
	}
	p.Close()
	p, err = d.Pipeline(ctx, name)
	if err != nil {
		return err
	}
	return p.Load(ctx)
}

// Status is one pipeline's progress, for `understudy status`.
type Status struct {
	Pipeline string `json:"pipeline"`
	State    string `json:"state"` // "not loaded", "loading", "streaming"
	Position string `json:"position,omitempty"`
	Lag      string `json:"lag,omitempty"`
	SavedAt  string `json:"saved_at,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Seq      uint64 `json:"seq"`
}

// Status reads the pipeline's checkpoint (and, where the source can tell, its
// replication state). It does not need the pipeline lock.
func (d *Deployment) Status(ctx context.Context, name string) (Status, error) {
	st := Status{Pipeline: name}
	p, err := d.Pipeline(ctx, name)
	if err != nil {
		return st, err
	}
	defer p.Close()
	cps := p.Checkpoints
	if cps == nil {
		cps = p.Sink.(sinks.TransactionalCheckpointer).Checkpoints()
	}
	cp, err := cps.Load(ctx, name)
	if errors.Is(err, checkpoint.ErrNotFound) {
		st.State = "not loaded"
		return st, nil
	}
	if err != nil {
		return st, err
	}
	st.Seq = cp.Seq
	st.SavedAt = cp.SavedAt.Format(time.RFC3339)
	st.Position = fmt.Sprintf("%x", cp.Position)
	if f, ok := p.Source.(cdc.PositionFormatter); ok {
		st.Position = f.FormatPosition(cp.Position)
	}
	if cp.Load != nil {
		st.State = "loading"
		done, total := 0, 0
		for t, n := range cp.Load.Tables {
			total += n
			done += len(cp.Load.Done[t])
		}
		st.Detail = fmt.Sprintf("%d/%d chunks, %d rows", done, total, cp.Load.Rows)
		partial := 0
		for _, m := range cp.Load.Cursors {
			partial += len(m)
		}
		if partial > 0 {
			st.Detail += fmt.Sprintf(" (%d chunks part-way)", partial)
		}
	} else {
		st.State = "streaming"
		if !cp.SourceTime.IsZero() {
			st.Lag = cp.SavedAt.Sub(cp.SourceTime).Round(time.Millisecond).String()
		}
	}
	if r, ok := p.Source.(cdc.StatusReporter); ok {
		if s, err := r.SourceStatus(ctx, cp.Position); err == nil {
			st.Detail = joinDetail(st.Detail, s)
		} else {
			st.Detail = joinDetail(st.Detail, "source: "+err.Error())
		}
	}
	return st, nil
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
