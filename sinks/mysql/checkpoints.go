package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/understudy/understudy/cdc"
	mysqlsrc "github.com/understudy/understudy/cdc/mysql"
	"github.com/understudy/understudy/checkpoint"
)

func (s *Sink) checkpointsName() string {
	return mysqlsrc.QuoteIdent(s.cfg.DBName) + "." + checkpointsTable
}

func (s *Sink) ensureCheckpoints(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+s.checkpointsName()+
		" (pipeline varchar(255) NOT NULL PRIMARY KEY, seq bigint unsigned NOT NULL, body longblob NOT NULL) DEFAULT CHARSET=utf8mb4")
	if err != nil {
		return fmt.Errorf("mysql target %s: create %s: %w", s.where(), checkpointsTable, err)
	}
	return nil
}

// ApplyAndSave applies changes and saves cp in one transaction. It returns
// checkpoint.ErrStale, applying nothing, when the stored checkpoint has a higher Seq.
func (s *Sink) ApplyAndSave(ctx context.Context, changes []cdc.Change, cp checkpoint.Checkpoint) error {
	if err := s.checkReplica(ctx, false); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.checkSeq(ctx, tx, cp); err != nil {
			return err
		}
		if err := s.apply(ctx, tx, changes); err != nil {
			return err
		}
		return s.saveCheckpoint(ctx, tx, cp)
	})
}

// Checkpoints returns the store over understudy_checkpoints.
func (s *Sink) Checkpoints() checkpoint.Store { return &checkpointStore{s: s} }

// checkSeq locks the pipeline's row (FOR UPDATE) and refuses a lower Seq.
func (s *Sink) checkSeq(ctx context.Context, tx *sql.Tx, cp checkpoint.Checkpoint) error {
	var stored uint64
	err := tx.QueryRowContext(ctx, "SELECT seq FROM "+s.checkpointsName()+" WHERE pipeline = ? FOR UPDATE", cp.Pipeline).Scan(&stored)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mysql target %s: read checkpoint: %w", s.where(), err)
	}
	if stored > cp.Seq {
		return fmt.Errorf("pipeline %s: stored seq %d > %d: %w", cp.Pipeline, stored, cp.Seq, checkpoint.ErrStale)
	}
	return nil
}

func (s *Sink) saveCheckpoint(ctx context.Context, tx *sql.Tx, cp checkpoint.Checkpoint) error {
	body, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, "INSERT INTO "+s.checkpointsName()+" (pipeline, seq, body) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE seq = VALUES(seq), body = VALUES(body)",
		cp.Pipeline, cp.Seq, body)
	if err != nil {
		return fmt.Errorf("mysql target %s: save checkpoint of %s: %w", s.where(), cp.Pipeline, err)
	}
	return nil
}

type checkpointStore struct{ s *Sink }

var _ checkpoint.Store = (*checkpointStore)(nil)

func (c *checkpointStore) exists(ctx context.Context) (bool, error) {
	var n int
	err := c.s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, c.s.cfg.DBName, checkpointsTable).Scan(&n)
	return n > 0, err
}

// Load returns the pipeline's checkpoint or checkpoint.ErrNotFound (also when the
// target was never prepared).
func (c *checkpointStore) Load(ctx context.Context, pipeline string) (checkpoint.Checkpoint, error) {
	var cp checkpoint.Checkpoint
	if ok, err := c.exists(ctx); err != nil || !ok {
		if err == nil {
			err = checkpoint.ErrNotFound
		}
		return cp, err
	}
	var body []byte
	err := c.s.db.QueryRowContext(ctx, "SELECT body FROM "+c.s.checkpointsName()+" WHERE pipeline = ?", pipeline).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
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
	if err := c.s.checkReplica(ctx, true); err != nil {
		return err
	}
	if err := c.s.ensureCheckpoints(ctx); err != nil {
		return err
	}
	return c.s.inTx(ctx, func(tx *sql.Tx) error {
		if err := c.s.checkSeq(ctx, tx, cp); err != nil {
			return err
		}
		return c.s.saveCheckpoint(ctx, tx, cp)
	})
}

// Delete removes the pipeline's checkpoint; a missing one is no error.
func (c *checkpointStore) Delete(ctx context.Context, pipeline string) error {
	if ok, err := c.exists(ctx); err != nil || !ok {
		return err
	}
	_, err := c.s.db.ExecContext(ctx, "DELETE FROM "+c.s.checkpointsName()+" WHERE pipeline = ?", pipeline)
	return err
}

// Close is a no-op: the sink owns the connections.
func (c *checkpointStore) Close() error { return nil }
