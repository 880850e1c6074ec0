package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/sinks"
)

var _ sinks.TableReader = (*Sink)(nil)

// ReadTable reads back every row of table (only its columns), decoded with the
// Postgres source's decoder, so `understudy verify` compares like with like.
func (s *Sink) ReadTable(ctx context.Context, table cdc.Table, emit func(rows []cdc.Row) error) error {
	var cols []string
	for _, c := range table.Columns {
		cols = append(cols, c.Name)
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	rows, err := tx.Query(ctx, "SELECT "+identList(cols)+" FROM "+qualified(table.Name), pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return fmt.Errorf("postgres target %s: read %s: %w", s.where, table.Name, err)
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	batch := make([]cdc.Row, 0, 1000)
	for rows.Next() {
		raw := rows.RawValues()
		r := make(cdc.Row, len(cols))
		for i, name := range cols {
			v, err := s.decoder.Decode(ctx, fields[i].DataTypeOID, raw[i])
			if err != nil {
				return fmt.Errorf("postgres target %s: read %s.%s: %w", s.where, table.Name, name, err)
			}
			r[name] = v
		}
		batch = append(batch, r)
		if len(batch) == cap(batch) {
			if err := emit(batch); err != nil {
				return err
			}
			batch = make([]cdc.Row, 0, 1000)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres target %s: read %s: %w", s.where, table.Name, err)
	}
	if len(batch) > 0 {
		if err := emit(batch); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}
