package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/checkpoint"
)

// cursorSaveInterval bounds how often a load saves the cursors of chunks that
// already have one (a chunk's first cursor and a finished chunk always save).
var cursorSaveInterval = 2 * time.Second

// load snapshots every selected table in parallel chunks and returns the
// checkpoint from which streaming continues.
//
// The start position is saved before the first row is read, so a load killed at
// any point resumes from the same position: finished chunks are skipped, the rest
// are read anew, and the stream replayed from that position converges.
func (p *Pipeline) load(ctx context.Context, cp checkpoint.Checkpoint) (checkpoint.Checkpoint, error) {
	var resume cdc.Position
	if cp.Load != nil {
		resume = cp.Position
	} else {
		// A fresh load knows nothing of what the target holds (a lost checkpoint
		// store, a reset interrupted after deleting the checkpoint): rows deleted
		// in production would linger, so the selected tables start empty.
		names := make([]string, len(p.tables))
		for i, t := range p.tables {
			names[i] = t.Name
		}
		if err := p.Sink.Clear(ctx, names); err != nil {
			return cp, fmt.Errorf("clearing the target before a fresh load: %w", err)
		}
	}
	snap, err := p.Source.BeginSnapshot(ctx, resume)
	if err != nil {
		return cp, err
	}
	defer snap.Close()

	if cp.Load == nil {
		cp.Load = &checkpoint.LoadProgress{Done: map[string][]string{}, Tables: map[string]int{}}
	}
	if cp.Load.Done == nil {
		cp.Load.Done = map[string][]string{}
	}
	if cp.Load.Tables == nil {
		cp.Load.Tables = map[string]int{}
	}
	cp.Position = snap.Position()
	if err := p.save(ctx, &cp); err != nil {
		return cp, err
	}

	// Plan every chunk first so progress has totals and workers share one queue.
	var todo []cdc.Chunk
	estimates := map[string]int64{}
	for _, t := range p.tables {
		chunks, err := snap.Chunks(ctx, t)
		if err != nil {
			return cp, fmt.Errorf("planning snapshot of %s: %w", t.Name, err)
		}
		cp.Load.Tables[t.Name] = len(chunks)
		for _, c := range chunks {
			estimates[t.Name] += c.EstimatedRows
			if !slices.Contains(cp.Load.Done[t.Name], c.ID) {
				todo = append(todo, c)
			}
		}
	}
	if skipped := totalChunks(cp.Load.Tables) - len(todo); skipped > 0 {
		p.log().Info("resuming initial load", "chunks_done", skipped, "chunks_left", len(todo))
	}
	for name, total := range cp.Load.Tables {
		p.Metrics.snapshotChunks(p.Name, name, len(cp.Load.Done[name]), total)
	}

	var (
		mu        sync.Mutex // guards cp and tableRows
		tableRows = map[string]int64{}
	)
	chunkDone := func(c cdc.Chunk, rows int64) error {
		mu.Lock()
		defer mu.Unlock()
		cp.Load.Done[c.Table] = append(cp.Load.Done[c.Table], c.ID)
		delete(cp.Load.Cursors[c.Table], c.ID)
		cp.Load.Rows += rows
		tableRows[c.Table] += rows
		if err := p.save(ctx, &cp); err != nil {
			return err
		}
		done, total := len(cp.Load.Done[c.Table]), cp.Load.Tables[c.Table]
		p.Metrics.snapshotChunks(p.Name, c.Table, done, total)
		if p.Progress != nil {
			p.Progress(Progress{Table: c.Table, ChunksDone: done, ChunksTotal: total,
				RowsWritten: cp.Load.Rows, TableRows: tableRows[c.Table], EstimateRows: estimates[c.Table]})
		}
		return nil
	}

	// A resumable snapshot also records where each unfinished chunk got to, at
	// most every cursorSaveInterval, so a kill costs a few seconds of rereading.
	rs, resumable := snap.(cdc.ResumableSnapshot)
	resumable = resumable && len(p.CursorKey) > 0
	lastSave := time.Now()
	cursorAt := func(c cdc.Chunk, next []byte) error {
		sealed, err := sealCursor(p.CursorKey, next)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if cp.Load.Cursors == nil {
			cp.Load.Cursors = map[string]map[string][]byte{}
		}
		if cp.Load.Cursors[c.Table] == nil {
			cp.Load.Cursors[c.Table] = map[string][]byte{}
		}
		_, had := cp.Load.Cursors[c.Table][c.ID]
		cp.Load.Cursors[c.Table][c.ID] = sealed
		// A chunk's first cursor is saved at once, later ones at most every
		// cursorSaveInterval: a chunk gets a resume point as soon as it has one.
		if had && time.Since(lastSave) < cursorSaveInterval {
			return nil
		}
		lastSave = time.Now()
		return p.save(ctx, &cp)
	}
	readChunk := func(ctx context.Context, c cdc.Chunk, emit func(rows []cdc.Row, next []byte) error) error {
		if !resumable {
			return snap.ReadChunk(ctx, c, func(rows []cdc.Row) error { return emit(rows, nil) })
		}
		mu.Lock()
		sealed := cp.Load.Cursors[c.Table][c.ID]
		mu.Unlock()
		var from []byte
		if sealed != nil {
			var err error
			if from, err = openCursor(p.CursorKey, sealed); err != nil {
				p.log().Warn("rereading a chunk from its start: its cursor does not open (was the secret changed?)", "table", c.Table, "chunk", c.ID)
				from = nil
			} else {
				p.log().Info("resuming a chunk part-way", "table", c.Table, "chunk", c.ID)
			}
		}
		return rs.ReadChunkFrom(ctx, c, from, emit)
	}

	start := time.Now()
	err = runWorkers(ctx, p.Options.Workers, todo, func(ctx context.Context, c cdc.Chunk) error {
		var n int64
		err := readChunk(ctx, c, func(rows []cdc.Row, next []byte) error {
			out, err := p.Transform.Rows(ctx, c.Table, rows)
			if err != nil {
				return err
			}
			if len(out) > 0 {
				if p.Publisher != nil {
					// Snapshot rows as "r" events; the chunk counts as done only
					// after both the events and the rows are delivered.
					if err := p.Publisher.Load(ctx, c.Table, out); err != nil {
						return fmt.Errorf("publish: %w", err)
					}
				}
				if err := p.Sink.Load(ctx, c.Table, out); err != nil {
					return err
				}
			}
			n += int64(len(out))
			p.Metrics.snapshotRows(p.Name, c.Table, len(out))
			if next != nil {
				return cursorAt(c, next)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("loading %s chunk %s: %w", c.Table, c.ID, err)
		}
		return chunkDone(c, n)
	})
	if err != nil {
		return cp, err
	}

	cp.Load = nil
	cp.Tables = cp.Tables[:0]
	for _, t := range p.tables {
		cp.Tables = append(cp.Tables, t.Name)
	}
	if err := p.save(ctx, &cp); err != nil {
		return cp, err
	}
	p.log().Info("initial load complete", "tables", len(p.tables), "duration", time.Since(start).Round(time.Millisecond).String())
	return cp, nil
}

func totalChunks(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// runWorkers runs fn over items with n workers and returns the first error, after
// which the remaining items are not started.
func runWorkers[T any](ctx context.Context, n int, items []T, fn func(context.Context, T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := make(chan T)
	var wg sync.WaitGroup
	for range min(n, max(len(items), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range queue {
				if err := fn(ctx, it); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
feed:
	for _, it := range items {
		select {
		case queue <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(queue)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}
