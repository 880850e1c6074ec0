package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/checkpoint"
)

// checkpointsDDL creates the in-target checkpoint table (Prepare runs it).
const checkpointsDDL = `CREATE TABLE IF NOT EXISTS understudy.checkpoints (
	pipeline text PRIMARY KEY,
	seq numeric(20) NOT NULL,
	body jsonb NOT NULL)`

// ApplyAndSave applies changes and saves cp in one transaction: both are durable
// or neither is. It returns checkpoint.ErrStale, applying nothing, when the
// stored checkpoint has a higher Seq.
func (s *Sink) ApplyAndSave(ctx context.Context, changes []cdc.Change, cp checkpoint.Checkpoint) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		// Lock and check first so a stale writer does no work, and two
		// writers of one pipeline serialize on the row.
		if err := checkSeq(ctx, tx, cp); err != nil {
			return err
		}
		if err := s.apply(ctx, tx, changes); err != nil {
			return err
		}
		return saveCheckpoint(ctx, tx, cp)
	})
}

// Checkpoints returns the store over understudy.checkpoints, sharing the sink's
// connections (its Close does not close them).
func (s *Sink) Checkpoints() checkpoint.Store { return &checkpointStore{s: s} }

func checkSeq(ctx context.Context, tx pgx.Tx, cp checkpoint.Checkpoint) error {
	var stored uint64
	err := tx.QueryRow(ctx, "SELECT seq::text::int8 FROM understudy.checkpoints WHERE pipeline = $1 FOR UPDATE", cp.Pipeline).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read checkpoint of %s: %w", cp.Pipeline, err)
	}
	if stored > cp.Seq {
		return fmt.Errorf("pipeline %s: stored seq %d > %d: %w", cp.Pipeline, stored, cp.Seq, checkpoint.ErrStale)
	}
	return nil
}

func saveCheckpoint(ctx context.Context, tx pgx.Tx, cp checkpoint.Checkpoint) error {
	body, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO understudy.checkpoints (pipeline, seq, body) VALUES ($1, $2::text::numeric, $3::jsonb)
		ON CONFLICT (pipeline) DO UPDATE SET seq = EXCLUDED.seq, body = EXCLUDED.body`,
		cp.Pipeline, fmt.Sprint(cp.Seq), string(body))
	if err != nil {
		return fmt.Errorf("save checkpoint of %s: %w", cp.Pipeline, err)
	}
	return nil
}

type checkpointStore struct{ s *Sink }

var _ checkpoint.Store = (*checkpointStore)(nil)

// Load returns the pipeline's checkpoint or checkpoint.ErrNotFound (also when the
// target was never prepared).
func (c *checkpointStore) Load(ctx context.Context, pipeline string) (checkpoint.Checkpoint, error) {
	var cp checkpoint.Checkpoint
	var exists bool
	if err := c.s.pool.QueryRow(ctx, "SELECT to_regclass('understudy.checkpoints') IS NOT NULL").Scan(&exists); err != nil {
		return cp, err
	}
	if !exists {
		return cp, checkpoint.ErrNotFound
	}
	var body []byte
	err := c.s.pool.QueryRow(ctx, "SELECT body::text FROM understudy.checkpoints WHERE pipeline = $1", pipeline).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return cp, checkpoint.ErrNotFound
	}
	if err != nil {
		return cp, err
	}
	if err := json.Unmarshal(body, &cp); err != nil {
		return cp, fmt.Errorf("checkpoint of %s does not parse: %w", pipeline, err)
	}
	return cp, nil
}

// Save stores cp, refusing a lower Seq with checkpoint.ErrStale. It refuses an
// unmarked target like every write.
func (c *checkpointStore) Save(ctx context.Context, cp checkpoint.Checkpoint) error {
	var exists bool
	if err := c.s.pool.QueryRow(ctx, "SELECT to_regclass('understudy.checkpoints') IS NOT NULL").Scan(&exists); err != nil {
		return err
	}
	if !exists {
		// Only Prepare creates it, after the replica check.
		if err := c.s.checkReplica(ctx, true); err != nil {
			return err
		}
		if _, err := c.s.pool.Exec(ctx, checkpointsDDL); err != nil {
			return err
		}
	}
	return c.s.inTx(ctx, func(tx pgx.Tx) error {
		if err := checkSeq(ctx, tx, cp); err != nil {
			return err
		}
		return saveCheckpoint(ctx, tx, cp)
	})
}

// Delete removes the pipeline's checkpoint; a missing one is no error.
func (c *checkpointStore) Delete(ctx context.Context, pipeline string) error {
	var exists bool
	if err := c.s.pool.QueryRow(ctx, "SELECT to_regclass('understudy.checkpoints') IS NOT NULL").Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return nil
	}
	_, err := c.s.pool.Exec(ctx, "DELETE FROM understudy.checkpoints WHERE pipeline = $1", pipeline)
	return err
}

// Close is a no-op: the sink owns the connections.
func (c *checkpointStore) Close() error { return nil }
