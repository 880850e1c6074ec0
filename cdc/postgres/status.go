package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/understudy/understudy/cdc"
)

var (
	_ cdc.TableReader       = (*Source)(nil)
	_ cdc.PositionFormatter = (*Source)(nil)
	_ cdc.StatusReporter    = (*Source)(nil)
)

// FormatPosition renders a position as Postgres prints LSNs ("16/B374D848").
func (s *Source) FormatPosition(pos cdc.Position) string {
	lsn, err := ParsePosition(pos)
	if err != nil {
		return fmt.Sprintf("invalid(%d bytes)", len(pos))
	}
	return lsn.String()
}

// ReadTable reads every current row of an opened table in one REPEATABLE READ
// transaction, decoded exactly like snapshot rows (for `understudy verify`).
func (s *Source) ReadTable(ctx context.Context, table cdc.Table, emit func(rows []cdc.Row) error) error {
	if s.pool == nil {
		return errors.New("postgres source: ReadTable before Open")
	}
	sn := &snapshot{src: s}
	return sn.ReadChunk(ctx, cdc.Chunk{Table: table.Name, ID: "all", Spec: []byte("all")}, emit)
}

// SourceStatus describes the pipeline's slot: whether a stream is attached, its
// confirmed position, how much WAL it retains, and the WAL's state. It connects
// on its own when Open was not called, and writes nothing.
func (s *Source) SourceStatus(ctx context.Context, pos cdc.Position) (string, error) {
	pool := s.pool
	if pool == nil {
		cfg, err := s.poolConfig()
		if err != nil {
			return "", err
		}
		if pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			return "", err
		}
		defer pool.Close()
	}
	var (
		active          bool
		flushed, status *string
		retained        *string
	)
	err := pool.QueryRow(ctx, `
		SELECT active, confirmed_flush_lsn::text, wal_status,
		       pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn))
		FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, s.name).Scan(&active, &flushed, &status, &retained)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Sprintf("slot %s does not exist (a load creates it)", s.name), nil
	}
	if err != nil {
		return "", fmt.Errorf("postgres source status: %w", err)
	}
	str := func(p *string) string {
		if p == nil {
			return "-"
		}
		return *p
	}
	return fmt.Sprintf("slot %s: active=%t confirmed_flush=%s retained_wal=%s wal_status=%s checkpoint=%s",
		s.name, active, str(flushed), str(retained), str(status), s.FormatPosition(pos)), nil
}
