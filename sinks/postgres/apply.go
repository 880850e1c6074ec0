package postgres

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/understudy/understudy/cdc"
)

// maxParams is Postgres' limit of bind parameters per statement.
const maxParams = 65535

// Apply applies changes in order in one transaction. Consecutive changes of one
// table that write the same columns become one multi-row INSERT … ON CONFLICT
// (key) DO UPDATE; consecutive deletes become one DELETE … WHERE (key) IN (…);
// groups run in order, so a delete after an insert of the same key wins.
func (s *Sink) Apply(ctx context.Context, changes []cdc.Change) error {
	if len(changes) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx pgx.Tx) error { return s.apply(ctx, tx, changes) })
}

// group is a run of consecutive changes that one statement applies.
type group struct {
	table string
	kind  byte     // 'u' upsert, 'd' delete, 't' truncate, 'k' key-changing update
	cols  []string // upsert: the columns written (sorted), Unchanged excluded
	rows  []cdc.Change
}

func (s *Sink) apply(ctx context.Context, tx pgx.Tx, changes []cdc.Change) error {
	changes = byTable(changes)
	staged := map[string]bool{}
	var cur *group
	flush := func() error {
		if cur == nil {
			return nil
		}
		g := cur
		cur = nil
		return s.applyGroup(ctx, tx, g, staged)
	}
	for _, c := range changes {
		var kind byte
		var cols []string
		switch c.Op {
		case cdc.Insert, cdc.Update:
			kind = 'u'
			switch {
			case c.Op == cdc.Update && s.keyChanged(c):
				kind = 'k'
			case c.Op == cdc.Update && len(c.Unchanged) > 0:
				kind = 'p'
			}
			// Consecutive rows of a table nearly always write the same columns:
			// checking that costs map lookups; listing and sorting them anew
			// cost ~3% of a busy stream's CPU.
			if cur != nil && cur.table == c.Table && writesExactly(c, cur.cols) {
				cols = cur.cols
			} else {
				cols = writtenColumns(c)
			}
		case cdc.Delete:
			kind = 'd'
		case cdc.Truncate:
			kind = 't'
		default:
			return fmt.Errorf("postgres target: change of %s has unknown op %v", c.Table, c.Op)
		}
		if cur != nil && (cur.table != c.Table || cur.kind != kind || kind == 't' || kind == 'k' || !slices.Equal(cur.cols, cols)) {
			if err := flush(); err != nil {
				return err
			}
		}
		if cur == nil {
			cur = &group{table: c.Table, kind: kind, cols: cols}
		}
		cur.rows = append(cur.rows, c)
	}
	return flush()
}

// byTable reorders a batch table by table (tables in order of first appearance),
// keeping each table's changes in source order. An OLTP transaction touches
// several tables in turn (pgbench: accounts, tellers, branches), so in source
// order no two neighbours share a table and every change became a statement and
// a round trip of its own; table by table, a batch needs about one statement per
// table. The final state is the same: changes of different tables commute here,
// because the target's tables have no foreign keys between them (the sink
// creates columns, keys and unique indexes only) and the whole batch commits in
// one transaction, so no reader sees the order.
func byTable(changes []cdc.Change) []cdc.Change {
	if len(changes) < 2 {
		return changes
	}
	first := changes[0].Table
	mixed := false
	for _, c := range changes[1:] {
		if c.Table != first {
			mixed = true
			break
		}
	}
	if !mixed {
		return changes
	}
	var order []string
	idx := map[string][]int{}
	for i, c := range changes {
		if _, ok := idx[c.Table]; !ok {
			order = append(order, c.Table)
		}
		idx[c.Table] = append(idx[c.Table], i)
	}
	out := make([]cdc.Change, 0, len(changes))
	for _, t := range order {
		for _, i := range idx[t] {
			out = append(out, changes[i])
		}
	}
	return out
}

// writtenColumns lists the columns an insert or update writes: After's columns
// except those the source left unchanged (TOAST), sorted for grouping.
func writtenColumns(c cdc.Change) []string {
	cols := make([]string, 0, len(c.After))
	for k := range c.After {
		if !slices.Contains(c.Unchanged, k) {
			cols = append(cols, k)
		}
	}
	sort.Strings(cols)
	return cols
}

// writesExactly reports whether writtenColumns(c) would list exactly cols. It
// only answers yes for a change without unchanged (TOAST) columns, the common
// case; any other answer makes the caller list the columns.
func writesExactly(c cdc.Change, cols []string) bool {
	if len(c.Unchanged) > 0 || len(c.After) != len(cols) {
		return false
	}
	for _, k := range cols {
		if _, ok := c.After[k]; !ok {
			return false
		}
	}
	return true
}

// key returns the key columns of a table: the Prepared key, else the change's.
func (s *Sink) key(table string, c cdc.Change) []string {
	s.mu.Lock()
	t, ok := s.tables[table]
	s.mu.Unlock()
	if ok && len(t.Key) > 0 {
		return t.Key
	}
	k := make([]string, 0, len(c.Key))
	for n := range c.Key {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// keyChanged reports an update that moved a row to a new key (Key is the old
// key, After holds the new one).
func (s *Sink) keyChanged(c cdc.Change) bool {
	if c.Key == nil {
		return false
	}
	for _, k := range s.key(c.Table, c) {
		nv, ok := c.After[k]
		if ok && !reflect.DeepEqual(nv, c.Key[k]) {
			return true
		}
	}
	return false
}

// staged lists the staging tables written earlier in the same transaction (see
// upsertStaged).
func (s *Sink) applyGroup(ctx context.Context, tx pgx.Tx, g *group, staged map[string]bool) error {
	var err error
	switch g.kind {
	case 't':
		_, err = tx.Exec(ctx, "TRUNCATE "+qualified(g.table))
	case 'd':
		err = s.deleteRows(ctx, tx, g)
	case 'u':
		if len(g.rows) >= stageMinRows {
			err = s.upsertStaged(ctx, tx, g.table, g.cols, g.rows, staged)
		} else {
			err = s.upsertRows(ctx, tx, g.table, g.cols, g.rows)
		}
	case 'k':
		err = s.moveRow(ctx, tx, g.rows[0], g.cols)
	case 'p':
		err = s.updateRows(ctx, tx, g.table, g.cols, g.rows)
	}
	if err != nil {
		return fmt.Errorf("postgres target %s: %s %d change(s) of %s: %w", s.where, kindName(g.kind), len(g.rows), g.table, safeErr(err))
	}
	return nil
}

func kindName(k byte) string {
	switch k {
	case 'p':
		return "partial update"
	case 'u':
		return "upsert"
	case 'd':
		return "delete"
	case 't':
		return "truncate"
	}
	return "key-changing update"
}

// stageMinRows is the group size from which an upsert goes through COPY into a
// staging table rather than a multi-row INSERT … VALUES with bind parameters.
// Below it the one-statement VALUES form is cheaper (one round trip instead of
// three, which matters for the latency of small, frequent batches: pgbench at
// 8k tps gives groups of ~800 rows per 100 ms, and a p99 of 1.5 s was seen with
// a threshold of 200 — not proven to be caused by it, but not worth the risk);
// above it the server's cost of parsing and type-resolving a VALUES list
// of thousands of rows and tens of thousands of untyped parameters dominates,
// while COPY text input is the cheapest way into Postgres.
var stageMinRows = 2000 // a variable so tests can force either path

// upsertStaged writes rows by COPY into a session-temporary staging table with
// the columns' target types, then one INSERT … SELECT … ON CONFLICT (key) DO
// UPDATE. Values take the same text route as upsertRows (each column's input
// function parses them), so the result is identical. Like upsertRows it keeps
// only the last image per key: the INSERT must not meet a key twice.
func (s *Sink) upsertStaged(ctx context.Context, tx pgx.Tx, table string, cols []string, rows []cdc.Change, staged map[string]bool) error {
	if len(cols) == 0 {
		return nil
	}
	key := s.key(table, rows[0])
	rows = lastPerKey(rows, key, func(c cdc.Change) cdc.Row { return c.After })
	after := make([]cdc.Row, len(rows))
	for i, c := range rows {
		after[i] = c.After
	}
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	*bufp = encodeCopy((*bufp)[:0], cols, after)
	return stageAndUpsert(ctx, tx, table, cols, key, *bufp, staged)
}

// stageAndUpsert COPYs data (COPY text lines of cols) into the session-temporary
// staging table of (table, cols) and upserts it into table by key in one
// statement. staged lists the staging tables already written in this
// transaction: ON COMMIT DELETE ROWS empties them only at commit, so a reused
// one is emptied first. data must hold each key once.
func stageAndUpsert(ctx context.Context, tx pgx.Tx, table string, cols, key []string, data []byte, staged map[string]bool) error {
	stage := stageName(table, cols)
	if staged[stage] {
		if _, err := tx.Exec(ctx, "DELETE FROM "+stage); err != nil {
			return err
		}
	} else if _, err := tx.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS "+stage+" ON COMMIT DELETE ROWS AS SELECT "+identList(cols)+" FROM "+qualified(table)+" WITH NO DATA"); err != nil {
		return err
	}
	staged[stage] = true
	if _, err := tx.Conn().PgConn().CopyFrom(ctx, bytes.NewReader(data), "COPY "+stage+" ("+identList(cols)+") FROM STDIN"); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, "INSERT INTO "+qualified(table)+" ("+identList(cols)+") SELECT "+identList(cols)+" FROM "+stage+upsertConflict(key, cols))
	return err
}

// upsertRows writes rows as INSERT … ON CONFLICT (key) DO UPDATE of cols, in
// statements under the parameter limit. Only one image per key is kept (the
// last): Postgres refuses to update a row twice in one statement.
func (s *Sink) upsertRows(ctx context.Context, tx pgx.Tx, table string, cols []string, rows []cdc.Change) error {
	if len(cols) == 0 {
		return nil
	}
	key := s.key(table, rows[0])
	rows = lastPerKey(rows, key, func(c cdc.Change) cdc.Row { return c.After })
	perStmt := max(maxParams/len(cols), 1)
	conflict := upsertConflict(key, cols)
	for len(rows) > 0 {
		n := min(len(rows), perStmt)
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + qualified(table) + " (" + identList(cols) + ") VALUES ")
		args := make([]any, 0, n*len(cols))
		for i, c := range rows[:n] {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('(')
			for j, col := range cols {
				if j > 0 {
					sb.WriteByte(',')
				}
				args = append(args, c.After[col])
				sb.WriteString("$" + strconv.Itoa(len(args)))
			}
			sb.WriteByte(')')
		}
		sb.WriteString(conflict)
		if _, err := execText(ctx, tx, sb.String(), args); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// updateRows applies updates that left some columns out (unchanged TOAST values)
// as plain UPDATEs: an upsert would create a missing row with those columns NULL,
// or fail forever on a NOT NULL column. A missing row is skipped. That happens when
// the stream replays over a snapshot read later (a resumed load), where a later
// change in the replay settles the row; and when a row enters a where: subset by
// an update whose source sends no old image (REPLICA IDENTITY DEFAULT), which
// README documents — the row stays missing rather than half-written.
func (s *Sink) updateRows(ctx context.Context, tx pgx.Tx, table string, cols []string, rows []cdc.Change) error {
	key := s.key(table, rows[0])
	rows = lastPerKey(rows, key, func(c cdc.Change) cdc.Row { return c.After })
	var set []string
	for _, c := range cols {
		if !slices.Contains(key, c) {
			set = append(set, c)
		}
	}
	if len(set) == 0 {
		return nil
	}
	// One statement per parameter-limited slice of rows: UPDATE … FROM (VALUES …)
	// joined on the key. Parameters are untyped text, so each is cast to its
	// column's type, as Prepare created it.
	s.mu.Lock()
	t := s.tables[table]
	s.mu.Unlock()
	all := append(slices.Clone(set), key...)
	casts := make([]string, len(all))
	for i, c := range all {
		col, ok := t.Column(c)
		if !ok || col.Type == "" {
			return fmt.Errorf("column %s of %s is not known to the sink; Prepare the table first", c, table)
		}
		casts[i] = "v." + pgx.Identifier{c}.Sanitize() + "::" + col.Type
	}
	var head strings.Builder
	head.WriteString("UPDATE " + qualified(table) + " AS t SET ")
	for i, c := range set {
		if i > 0 {
			head.WriteString(", ")
		}
		head.WriteString(pgx.Identifier{c}.Sanitize() + " = " + casts[i])
	}
	head.WriteString(" FROM (VALUES ")
	var tail strings.Builder
	tail.WriteString(") AS v(" + identList(all) + ") WHERE ")
	for i, k := range key {
		if i > 0 {
			tail.WriteString(" AND ")
		}
		tail.WriteString("t." + pgx.Identifier{k}.Sanitize() + " = " + casts[len(set)+i])
	}
	perStmt := max(maxParams/len(all), 1)
	for len(rows) > 0 {
		n := min(len(rows), perStmt)
		var sb strings.Builder
		sb.WriteString(head.String())
		args := make([]any, 0, n*len(all))
		for i, c := range rows[:n] {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('(')
			for j, col := range all {
				if j > 0 {
					sb.WriteByte(',')
				}
				v, ok := c.After[col]
				if !ok {
					v = c.Key[col]
				}
				args = append(args, v)
				sb.WriteString("$" + strconv.Itoa(len(args)))
			}
			sb.WriteByte(')')
		}
		sb.WriteString(tail.String())
		if _, err := execText(ctx, tx, sb.String(), args); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// deleteRows deletes by key in statements under the parameter limit.
func (s *Sink) deleteRows(ctx context.Context, tx pgx.Tx, g *group) error {
	key := s.key(g.table, g.rows[0])
	perStmt := max(maxParams/len(key), 1)
	rows := g.rows
	for len(rows) > 0 {
		n := min(len(rows), perStmt)
		var sb strings.Builder
		sb.WriteString("DELETE FROM " + qualified(g.table) + " WHERE (" + identList(key) + ") IN (")
		args := make([]any, 0, n*len(key))
		for i, c := range rows[:n] {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteByte('(')
			for j, k := range key {
				if j > 0 {
					sb.WriteByte(',')
				}
				v, ok := c.Key[k]
				if !ok {
					return fmt.Errorf("delete without key column %s", k)
				}
				args = append(args, v)
				sb.WriteString("$" + strconv.Itoa(len(args)))
			}
			sb.WriteByte(')')
		}
		sb.WriteByte(')')
		if _, err := execText(ctx, tx, sb.String(), args); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// moveRow applies an update that changed the key: the row at the old key moves
// to the new key, keeping its unchanged TOAST columns. A replay can meet a row
// already at the new key (this change was applied before, and earlier replayed
// changes re-created the old row); the old row then holds the right pre-image,
// so the newer one gives way. If no row is at the old key (the move was
// applied and nothing re-created it), the new image is upserted.
func (s *Sink) moveRow(ctx context.Context, tx pgx.Tx, c cdc.Change, cols []string) error {
	key := s.key(c.Table, c)
	var args []any
	match := func(img cdc.Row) string {
		var where []string
		for _, k := range key {
			args = append(args, img[k])
			where = append(where, pgx.Identifier{k}.Sanitize()+" = $"+strconv.Itoa(len(args)))
		}
		return strings.Join(where, " AND ")
	}
	newKey, oldKey := match(c.After), match(c.Key)
	table := qualified(c.Table)
	if _, err := execText(ctx, tx, "DELETE FROM "+table+" WHERE "+newKey+" AND EXISTS (SELECT 1 FROM "+table+" WHERE "+oldKey+")", args); err != nil {
		return err
	}
	args = nil
	var set []string
	for _, col := range cols {
		args = append(args, c.After[col])
		set = append(set, pgx.Identifier{col}.Sanitize()+" = $"+strconv.Itoa(len(args)))
	}
	n, err := execText(ctx, tx, "UPDATE "+table+" SET "+strings.Join(set, ", ")+" WHERE "+match(c.Key), args)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	return s.upsertRows(ctx, tx, c.Table, cols, []cdc.Change{c})
}

// lastPerKey keeps the last change of each key, in order of last occurrence.
func lastPerKey(rows []cdc.Change, key []string, image func(cdc.Change) cdc.Row) []cdc.Change {
	if len(rows) < 2 {
		return rows
	}
	last := make(map[string]int, len(rows))
	keys := make([]string, len(rows))
	for i, c := range rows {
		var b strings.Builder
		img := image(c)
		for _, k := range key {
			s, ok := encodeText(img[k])
			if !ok {
				b.WriteString("\x00N")
			}
			b.WriteString(s)
			b.WriteByte(0)
		}
		keys[i] = b.String()
		last[keys[i]] = i
	}
	if len(last) == len(rows) {
		return rows
	}
	out := make([]cdc.Change, 0, len(last))
	for i, c := range rows {
		if last[keys[i]] == i {
			out = append(out, c)
		}
	}
	return out
}

// execText runs sql with every argument sent as untyped text (see encode.go), so
// the server parses each with its column's input function. It returns the
// number of rows affected.
func execText(ctx context.Context, tx pgx.Tx, sql string, args []any) (int64, error) {
	vals := make([][]byte, len(args))
	for i, a := range args {
		if s, ok := encodeText(a); ok {
			vals[i] = []byte(s)
		}
	}
	// OID 0 = unspecified: the server infers each parameter's type from its use.
	oids := make([]uint32, len(args))
	tag, err := tx.Conn().PgConn().ExecParams(ctx, sql, vals, oids, nil, nil).Close()
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
