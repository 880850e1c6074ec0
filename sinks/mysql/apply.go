package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
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
	if !s.noLocalInfile.Load() {
		err := s.loadData(ctx, table, rows)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errNoLocalInfile):
			s.noLocalInfile.Store(true)
		case !errors.Is(err, errMixed):
			return fmt.Errorf("mysql target %s: load %s: %w", s.where(), table, err)
		}
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

// apply applies changes as their net effect per key. The batch is one target
// transaction, so only its end state is visible: for each (table, key) the last
// change decides whether the row ends present (one upsert of its last image) or
// absent (one delete). Each table then gets one multi-row DELETE and one
// multi-row upsert per column set, deletes first, upserts in the order of their
// last change, instead of a statement for every run of changes: an OLTP stream
// (sysbench's update, update, delete, insert per transaction) otherwise cost a
// round trip per one or two rows.
//
// Barriers keep order where the net effect cannot be computed: a Truncate
// applies everything before it first, and so does an update that leaves columns
// out (Unchanged, a Postgres source's TOAST) of a row the batch has no full image
// of, which then updates in place.
func (s *Sink) apply(ctx context.Context, tx *sql.Tx, changes []cdc.Change) error {
	n := &netChanges{byTable: map[string]*tableNet{}}
	for i := range changes {
		c := &changes[i]
		switch c.Op {
		case cdc.Truncate:
			if err := s.flushNet(ctx, tx, n); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+s.targetName(c.Table)); err != nil {
				return fmt.Errorf("mysql target %s: truncate %s: %w", s.where(), c.Table, err)
			}
		case cdc.Delete:
			n.put(c.Table, s.keyColumns(c.Table, c.Key), c.Key, nil)
		case cdc.Insert, cdc.Update:
			keyCols := s.keyColumns(c.Table, c.Key)
			moved := c.Op == cdc.Update && s.keyChanged(*c)
			row := c.After
			if c.Op == cdc.Update && len(c.Unchanged) > 0 && !moved {
				// Columns left out cannot make a whole row: complete it from the
				// batch's own image of the row, or update in place, never insert
				// (a missing row stays missing, see sinks/sinktest).
				prev, ok := n.get(c.Table, keyCols, c.Key)
				if !ok || prev == nil {
					if err := s.flushNet(ctx, tx, n); err != nil {
						return err
					}
					if err := s.updateInPlace(ctx, tx, *c); err != nil {
						return fmt.Errorf("mysql target %s: partial update of %s: %w", s.where(), c.Table, err)
					}
					continue
				}
				row = prev.Clone()
				for k, v := range c.After {
					row[k] = v
				}
			}
			if moved {
				// The row moved to a new key: the old one ends absent (unless a
				// later change brings it back).
				n.put(c.Table, keyCols, c.Key, nil)
			}
			key := make(cdc.Row, len(keyCols))
			for _, k := range keyCols {
				if v, ok := row[k]; ok {
					key[k] = v
				} else {
					key[k] = c.Key[k]
				}
			}
			n.put(c.Table, keyCols, key, row)
		}
	}
	return s.flushNet(ctx, tx, n)
}

// keyColumns is the table's primary key (as prepared), else the change's key
// columns in name order.
func (s *Sink) keyColumns(table string, key cdc.Row) []string {
	s.mu.Lock()
	t, ok := s.tables[table]
	s.mu.Unlock()
	if ok && len(t.Key) > 0 {
		return t.Key
	}
	return rowColumns(key)
}

// netChanges is the net effect of a run of changes: per table, per key, the last
// image (nil: the row ends absent).
type netChanges struct {
	byTable map[string]*tableNet
	tables  []string // first-seen order
	seq     int
}

type tableNet struct {
	entries map[string]*netEntry
}

type netEntry struct {
	key cdc.Row
	row cdc.Row // nil: delete
	seq int     // order of the last change
}

func (n *netChanges) table(name string) *tableNet {
	t, ok := n.byTable[name]
	if !ok {
		t = &tableNet{entries: map[string]*netEntry{}}
		n.byTable[name] = t
		n.tables = append(n.tables, name)
	}
	return t
}

func (n *netChanges) put(table string, keyCols []string, key, row cdc.Row) {
	n.seq++
	t := n.table(table)
	id := keyID(keyCols, key)
	if e, ok := t.entries[id]; ok {
		e.key, e.row, e.seq = key, row, n.seq
		return
	}
	t.entries[id] = &netEntry{key: key, row: row, seq: n.seq}
}

func (n *netChanges) get(table string, keyCols []string, key cdc.Row) (cdc.Row, bool) {
	t, ok := n.byTable[table]
	if !ok {
		return nil, false
	}
	e, ok := t.entries[keyID(keyCols, key)]
	if !ok {
		return nil, false
	}
	return e.row, true
}

// keyID renders a key's values unambiguously (type and quoted value per column).
func keyID(cols []string, key cdc.Row) string {
	var b strings.Builder
	for _, c := range cols {
		switch v := key[c].(type) {
		case string:
			b.WriteString(strconv.Quote(v))
		case []byte:
			b.WriteString("b" + strconv.Quote(string(v)))
		case int64:
			b.WriteString("i" + strconv.FormatInt(v, 10))
		case uint64:
			b.WriteString("u" + strconv.FormatUint(v, 10))
		default:
			fmt.Fprintf(&b, "%T:%#v", v, v)
		}
		b.WriteByte(0)
	}
	return b.String()
}

// flushNet writes the net effect gathered so far and empties it.
func (s *Sink) flushNet(ctx context.Context, tx *sql.Tx, n *netChanges) error {
	for _, name := range n.tables {
		t := n.byTable[name]
		entries := make([]*netEntry, 0, len(t.entries))
		var deletes []cdc.Row
		for _, e := range t.entries {
			if e.row == nil {
				deletes = append(deletes, e.key)
			} else {
				entries = append(entries, e)
			}
		}
		if len(deletes) > 0 {
			if err := s.delete(ctx, tx, name, deletes); err != nil {
				return fmt.Errorf("mysql target %s: apply to %s: %w", s.where(), name, err)
			}
		}
		slices.SortFunc(entries, func(a, b *netEntry) int { return a.seq - b.seq })
		// Group the rows by column set (nearly always one), keeping their order.
		type group struct {
			cols []string
			rows []cdc.Row
		}
		var groups []*group
	next:
		for _, e := range entries {
			for _, g := range groups {
				if hasColumns(e.row, g.cols) {
					g.rows = append(g.rows, e.row)
					continue next
				}
			}
			groups = append(groups, &group{cols: rowColumns(e.row), rows: []cdc.Row{e.row}})
		}
		for _, g := range groups {
			if err := s.upsert(ctx, tx, name, g.rows, g.cols); err != nil {
				return fmt.Errorf("mysql target %s: apply to %s: %w", s.where(), name, err)
			}
		}
	}
	n.byTable, n.tables = map[string]*tableNet{}, nil
	return nil
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
