package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/understudy/understudy/cdc"
	mysqlsrc "github.com/understudy/understudy/cdc/mysql"
)

// maxParams bounds the placeholders of one statement (the protocol allows 65535;
// interpolated statements are also bounded by max_allowed_packet, so rows per
// statement are capped too).
const (
	maxParams  = 20000
	maxRowsSQL = 1000
)

// Load upserts snapshot rows with multi-row INSERT … ON DUPLICATE KEY UPDATE.
func (s *Sink) Load(ctx context.Context, table string, rows []cdc.Row) error {
	if err := s.checkReplica(ctx, false); err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	if err := s.upsert(ctx, s.db, table, rows, nil); err != nil {
		return fmt.Errorf("mysql target %s: load %s: %w", s.where(), table, err)
	}
	return nil
}

// Apply applies changes in order in one transaction.
func (s *Sink) Apply(ctx context.Context, changes []cdc.Change) error {
	if err := s.checkReplica(ctx, false); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error { return s.apply(ctx, tx, changes) })
}

func (s *Sink) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("mysql target %s: %w", s.where(), err)
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("mysql target %s: commit: %w", s.where(), err)
	}
	return nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// apply walks the changes in order, gathering runs of the same table and kind
// (upserts with one column set, or deletes) into one statement each. Order within
// a key is kept because runs never reorder changes, and within one multi-row
// upsert a later row for a key overwrites an earlier one.
func (s *Sink) apply(ctx context.Context, tx *sql.Tx, changes []cdc.Change) error {
	var (
		runTable string
		runKind  int // 1 upsert, 2 delete
		runCols  []string
		upserts  []cdc.Row
		deletes  []cdc.Row
	)
	flush := func() error {
		var err error
		switch runKind {
		case 1:
			err = s.upsert(ctx, tx, runTable, upserts, runCols)
		case 2:
			err = s.delete(ctx, tx, runTable, deletes)
		}
		upserts, deletes, runKind = upserts[:0], deletes[:0], 0
		if err != nil {
			return fmt.Errorf("mysql target %s: apply to %s: %w", s.where(), runTable, err)
		}
		return nil
	}
	for _, c := range changes {
		switch c.Op {
		case cdc.Truncate:
			if err := flush(); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+s.targetName(c.Table)); err != nil {
				return fmt.Errorf("mysql target %s: truncate %s: %w", s.where(), c.Table, err)
			}
		case cdc.Delete:
			if runKind != 2 || runTable != c.Table {
				if err := flush(); err != nil {
					return err
				}
				runKind, runTable = 2, c.Table
			}
			deletes = append(deletes, c.Key)
		case cdc.Insert, cdc.Update:
			if c.Op == cdc.Update && len(c.Unchanged) > 0 && !s.keyChanged(c) {
				// Columns left out (a Postgres source's unchanged TOAST values)
				// cannot make a whole row: update in place, never insert. A
				// missing row stays missing (see sinks/sinktest).
				if err := flush(); err != nil {
					return err
				}
				if err := s.updateInPlace(ctx, tx, c); err != nil {
					return fmt.Errorf("mysql target %s: partial update of %s: %w", s.where(), c.Table, err)
				}
				continue
			}
			if c.Op == cdc.Update && s.keyChanged(c) {
				// The row moved to a new key: remove the old one first.
				if runKind != 2 || runTable != c.Table {
					if err := flush(); err != nil {
						return err
					}
					runKind, runTable = 2, c.Table
				}
				deletes = append(deletes, c.Key)
			}
			if runKind != 1 || runTable != c.Table || !hasColumns(c.After, runCols) {
				if err := flush(); err != nil {
					return err
				}
				runKind, runTable, runCols = 1, c.Table, rowColumns(c.After)
			}
			upserts = append(upserts, c.After)
		}
	}
	return flush()
}

// updateInPlace writes an update's columns to an existing row only.
func (s *Sink) updateInPlace(ctx context.Context, ex execer, c cdc.Change) error {
	s.mu.Lock()
	t := s.tables[c.Table]
	s.mu.Unlock()
	var set []string
	var args []any
	for _, col := range rowColumns(c.After) {
		if t.IsKey(col) {
			continue
		}
		v, err := encode(c.After[col])
		if err != nil {
			return fmt.Errorf("column %s: %w", col, err)
		}
		set = append(set, mysqlsrc.QuoteIdent(col)+" = ?")
		args = append(args, v)
	}
	if len(set) == 0 {
		return nil
	}
	var where []string
	for _, k := range t.Key {
		v, ok := c.After[k]
		if !ok {
			v = c.Key[k]
		}
		ev, err := encode(v)
		if err != nil {
			return fmt.Errorf("key %s: %w", k, err)
		}
		where = append(where, mysqlsrc.QuoteIdent(k)+" = ?")
		args = append(args, ev)
	}
	_, err := ex.ExecContext(ctx, "UPDATE "+s.targetName(c.Table)+" SET "+strings.Join(set, ", ")+" WHERE "+strings.Join(where, " AND "), args...)
	return err
}

// keyChanged reports an update whose new image has another key than c.Key.
func (s *Sink) keyChanged(c cdc.Change) bool {
	for k, old := range c.Key {
		if nv, ok := c.After[k]; ok && !reflect.DeepEqual(nv, old) {
			return true
		}
	}
	return false
}

// hasColumns reports whether r has exactly the columns cols (sorted), without
// sorting r's: most changes of a run share their columns.
func hasColumns(r cdc.Row, cols []string) bool {
	if len(r) != len(cols) {
		return false
	}
	for _, c := range cols {
		if _, ok := r[c]; !ok {
			return false
		}
	}
	return true
}

func rowColumns(r cdc.Row) []string {
	cols := make([]string, 0, len(r))
	for k := range r {
		cols = append(cols, k)
	}
	sort.Strings(cols)
	return cols
}

// upsert writes rows (all with the columns cols, or each row's own when nil) as
// INSERT … ON DUPLICATE KEY UPDATE of the non-key columns. Columns a row lacks
// (Unchanged) are neither inserted nor updated.
func (s *Sink) upsert(ctx context.Context, ex execer, table string, rows []cdc.Row, cols []string) error {
	if cols == nil {
		cols = rowColumns(rows[0])
		for _, r := range rows[1:] {
			if len(r) != len(cols) {
				// Mixed column sets: write them in runs of equal columns.
				return s.upsertMixed(ctx, ex, table, rows)
			}
		}
	}
	s.mu.Lock()
	t := s.tables[table]
	s.mu.Unlock()
	quoted := make([]string, len(cols))
	var updates []string
	for i, c := range cols {
		quoted[i] = mysqlsrc.QuoteIdent(c)
		if !t.IsKey(c) {
			updates = append(updates, quoted[i]+" = VALUES("+quoted[i]+")")
		}
	}
	if len(updates) == 0 { // only key columns: nothing to update on conflict
		updates = append(updates, quoted[0]+" = "+quoted[0])
	}
	head := "INSERT INTO " + s.targetName(table) + " (" + strings.Join(quoted, ", ") + ") VALUES "
	tail := " ON DUPLICATE KEY UPDATE " + strings.Join(updates, ", ")
	tuple := "(" + strings.Repeat("?, ", len(cols)-1) + "?)"
	per := max(1, min(maxRowsSQL, maxParams/len(cols)))
	for start := 0; start < len(rows); start += per {
		part := rows[start:min(start+per, len(rows))]
		var b strings.Builder
		b.WriteString(head)
		args := make([]any, 0, len(part)*len(cols))
		for i, r := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(tuple)
			for _, c := range cols {
				v, err := encode(r[c])
				if err != nil {
					return fmt.Errorf("column %s: %w", c, err)
				}
				args = append(args, v)
			}
		}
		b.WriteString(tail)
		if _, err := ex.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

func (s *Sink) upsertMixed(ctx context.Context, ex execer, table string, rows []cdc.Row) error {
	start := 0
	for i := 1; i <= len(rows); i++ {
		if i == len(rows) || !slices.Equal(rowColumns(rows[i]), rowColumns(rows[start])) {
			if err := s.upsert(ctx, ex, table, rows[start:i], rowColumns(rows[start])); err != nil {
				return err
			}
			start = i
		}
	}
	return nil
}

// delete removes rows by key: DELETE … WHERE (k1, k2) IN ((?, ?), …).
func (s *Sink) delete(ctx context.Context, ex execer, table string, keys []cdc.Row) error {
	cols := rowColumns(keys[0])
	quoted := make([]string, len(cols))
	for i, c := range cols {
		quoted[i] = mysqlsrc.QuoteIdent(c)
	}
	tuple := "(" + strings.Repeat("?, ", len(cols)-1) + "?)"
	per := max(1, min(maxRowsSQL, maxParams/len(cols)))
	for start := 0; start < len(keys); start += per {
		part := keys[start:min(start+per, len(keys))]
		var b strings.Builder
		b.WriteString("DELETE FROM " + s.targetName(table) + " WHERE (" + strings.Join(quoted, ", ") + ") IN (")
		var args []any
		for i, k := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(tuple)
			for _, c := range cols {
				v, err := encode(k[c])
				if err != nil {
					return fmt.Errorf("key column %s: %w", c, err)
				}
				args = append(args, v)
			}
		}
		b.WriteString(")")
		if _, err := ex.ExecContext(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// encode turns a normalized value into a driver argument.
func encode(v any) (any, error) {
	switch x := v.(type) {
	case nil, int64, uint64, float64, string, []byte:
		return x, nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case int:
		return int64(x), nil
	case cdc.Decimal:
		return string(x), nil
	case cdc.Date:
		return string(x), nil
	case cdc.TimeOfDay:
		return string(x), nil
	case cdc.Interval:
		return string(x), nil
	case cdc.JSON:
		return string(x), nil
	case json.Number:
		return x.String(), nil
	case time.Time:
		if x.IsZero() {
			return "0000-00-00 00:00:00", nil
		}
		return x.UTC().Format("2006-01-02 15:04:05.999999"), nil
	case []any, map[string]any:
		b, err := cdc.MarshalJSON(x)
		return string(b), err
	}
	return nil, fmt.Errorf("cannot write a %s", cdc.Describe(v))
}
