package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/understudy/understudy/cdc"
)

// Load writes snapshot rows with COPY (text format).
//
// Fast path: COPY straight into the table, in its own transaction. A snapshot
// row whose key is not in the target yet is written exactly as the upsert would
// write it, so when nothing conflicts the result is the same, at a fraction of
// the cost (one write per row instead of COPY into staging + INSERT … SELECT …
// ON CONFLICT). That is every batch of a fresh load into an empty table.
//
// Fallback: if the COPY meets a row already there (unique_violation — a chunk
// re-read after a crash, a resumed load, a target that was not emptied), its
// transaction is rolled back whole, so nothing of it was written, and the same
// rows go through a temporary staging table and are upserted, so a re-read
// chunk overlaps harmlessly. The sink needs no hint about whether a load is
// fresh or resumed: the server's key check decides, batch by batch, and a
// resumed load pays the failed COPY only for the batches that overlap.
//
// Safe for concurrent use: each call uses its own pooled connection and its own
// (session-temporary) staging table.
func (s *Sink) Load(ctx context.Context, table string, rows []cdc.Row) error {
	if len(rows) == 0 {
		return nil
	}
	cols := s.loadColumns(table, rows)
	key := s.key(table, cdc.Change{})
	if len(key) == 0 {
		return fmt.Errorf("postgres target %s: load %s: table has no key (Prepare it first)", s.where, table)
	}
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	data := encodeCopy((*bufp)[:0], cols, rows)
	*bufp = data
	copySQL := " (" + identList(cols) + ") FROM STDIN"

	err := s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), "COPY "+qualified(table)+copySQL)
		return err
	})
	if err == nil || !isUniqueViolation(err) {
		if err != nil {
			return fmt.Errorf("postgres target %s: load %d row(s) into %s: %w", s.where, len(rows), table, safeErr(err))
		}
		return nil
	}

	// A snapshot batch holds each key once (the source's key is unique), so the
	// upsert never meets a key twice in one statement.
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		return stageAndUpsert(ctx, tx, table, cols, key, data, map[string]bool{})
	})
	if err != nil {
		return fmt.Errorf("postgres target %s: load %d row(s) into %s: %w", s.where, len(rows), table, safeErr(err))
	}
	return nil
}

// stageName names the session-temporary staging table for a table and column
// set (quoted).
func stageName(table string, cols []string) string {
	h := fnv.New64a()
	h.Write([]byte(table + "\x00" + strings.Join(cols, "\x00")))
	return pgx.Identifier{fmt.Sprintf("understudy_stage_%x", h.Sum64())}.Sanitize()
}

// copyBufs recycles COPY payload buffers between loads (a 1000-row batch of a
// wide table is a few hundred KiB).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// encodeCopy appends rows as COPY text lines of cols.
func encodeCopy(buf []byte, cols []string, rows []cdc.Row) []byte {
	for _, r := range rows {
		for i, c := range cols {
			if i > 0 {
				buf = append(buf, '\t')
			}
			buf = copyField(buf, r[c])
		}
		buf = append(buf, '\n')
	}
	return buf
}

// upsertConflict is the ON CONFLICT clause that makes an insert of cols an
// upsert by key.
func upsertConflict(key, cols []string) string {
	var update []string
	for _, c := range cols {
		if !contains(key, c) {
			q := pgx.Identifier{c}.Sanitize()
			update = append(update, q+" = EXCLUDED."+q)
		}
	}
	if len(update) == 0 {
		return " ON CONFLICT (" + identList(key) + ") DO NOTHING"
	}
	return " ON CONFLICT (" + identList(key) + ") DO UPDATE SET " + strings.Join(update, ", ")
}

// isUniqueViolation reports SQLSTATE 23505.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// loadColumns lists the columns to write: the Prepared table's columns that the
// rows carry, else the first row's columns.
func (s *Sink) loadColumns(table string, rows []cdc.Row) []string {
	s.mu.Lock()
	t, ok := s.tables[table]
	s.mu.Unlock()
	var cols []string
	if ok {
		for _, c := range t.Columns {
			if _, has := rows[0][c.Name]; has {
				cols = append(cols, c.Name)
			}
		}
		return cols
	}
	for c := range rows[0] {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	return cols
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// safeErr strips values from Postgres errors: messages of data and integrity
// errors quote the offending value ("invalid input syntax for type integer:
// …"), which must not reach logs. What remains names the code, table, column
// and constraint.
func safeErr(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	if !strings.HasPrefix(pe.Code, "22") && !strings.HasPrefix(pe.Code, "23") {
		return err
	}
	msg := "value rejected by Postgres"
	if strings.HasPrefix(pe.Code, "23") {
		msg = "integrity constraint violated"
	}
	var parts []string
	if pe.TableName != "" {
		parts = append(parts, "table "+pe.TableName)
	}
	if pe.ColumnName != "" {
		parts = append(parts, "column "+pe.ColumnName)
	}
	if pe.ConstraintName != "" {
		parts = append(parts, "constraint "+pe.ConstraintName)
	}
	if pe.DataTypeName != "" {
		parts = append(parts, "type "+pe.DataTypeName)
	}
	if len(parts) > 0 {
		msg += " (" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Errorf("%s: SQLSTATE %s", msg, pe.Code)
}
