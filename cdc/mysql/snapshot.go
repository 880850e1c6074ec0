package mysql

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/understudy/understudy/cdc"
)

// emitRows is the number of rows ReadChunk hands to emit at a time.
const emitRows = 1000

// querier is a *sql.DB, *sql.Conn or *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// snapshot reads chunks, each with one SELECT (a consistent read of its own),
// all at or after pos. Replaying the binlog from pos over rows read at any later
// point converges (sinks upsert; the transform is deterministic), so chunks need
// not share one snapshot and can be read in parallel without locking production.
type snapshot struct {
	src *Source
	pos Position
}

// BeginSnapshot captures the binlog position the stream resumes from, before any
// row is read.
//
// MariaDB: inside START TRANSACTION WITH CONSISTENT SNAPSHOT, the status variables
// binlog_snapshot_file/position name exactly the binlog point of that snapshot, and
// BINLOG_GTID_POS() turns it into a GTID position; no lock is taken.
// MySQL: a brief FLUSH TABLES WITH READ LOCK makes the binlog position and the
// visible data agree (every transaction in the binlog is committed in the engine);
// without the RELOAD privilege the position is read without the lock.
//
// For a resumed load (resume != nil) the position is kept; its binlog file must
// still exist, else the error wraps cdc.ErrPositionLost.
func (s *Source) BeginSnapshot(ctx context.Context, resume cdc.Position) (cdc.Snapshot, error) {
	if s.db == nil {
		return nil, errors.New("mysql source: BeginSnapshot before Open")
	}
	if resume != nil {
		p, err := ParsePosition(resume)
		if err != nil {
			return nil, err
		}
		if err := s.checkRetained(ctx, p); err != nil {
			return nil, err
		}
		return &snapshot{src: s, pos: p}, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("mysql snapshot %s: %w", s.where(), err)
	}
	defer conn.Close()
	var p Position
	if s.flavor == FlavorMariaDB {
		p, err = s.mariadbSnapshotPosition(ctx, conn)
	} else {
		p, err = s.mysqlLockedPosition(ctx, conn)
	}
	if err != nil {
		return nil, fmt.Errorf("mysql snapshot %s: %w", s.where(), err)
	}
	p.Tables = s.schemaNow()
	return &snapshot{src: s, pos: p}, nil
}

// schemaNow is the schema Open read, for a position taken now.
func (s *Source) schemaNow() map[string]*tableInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]*tableInfo, len(s.tables))
	for k, v := range s.tables {
		m[k] = v
	}
	return m
}

func (s *Source) mariadbSnapshotPosition(ctx context.Context, conn *sql.Conn) (Position, error) {
	if _, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
		return Position{}, err
	}
	defer conn.ExecContext(context.Background(), "COMMIT")
	rows, err := conn.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
	if err != nil {
		return Position{}, err
	}
	p := Position{Flavor: FlavorMariaDB}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return Position{}, err
		}
		switch strings.ToLower(k) {
		case "binlog_snapshot_file":
			p.File = v
		case "binlog_snapshot_position":
			n, _ := strconv.ParseUint(v, 10, 32)
			p.Pos = uint32(n)
		}
	}
	rows.Close()
	if p.File == "" {
		return Position{}, errors.New("the server reports no binlog_snapshot_file: is the binary log on?")
	}
	var gtid sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", p.File, p.Pos).Scan(&gtid); err != nil {
		return Position{}, err
	}
	p.GTID = gtid.String
	return p, nil
}

func (s *Source) mysqlLockedPosition(ctx context.Context, conn *sql.Conn) (Position, error) {
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err == nil {
		defer conn.ExecContext(context.Background(), "UNLOCK TABLES")
	}
	return s.currentPosition(ctx, conn)
}

// currentPosition reads the server's current binlog file, offset and GTID set.
func (s *Source) currentPosition(ctx context.Context, q querier) (Position, error) {
	p := Position{Flavor: s.flavor}
	rows, err := q.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		// MySQL 8.4 renamed it.
		var err2 error
		if rows, err2 = q.QueryContext(ctx, "SHOW BINARY LOG STATUS"); err2 != nil {
			return p, fmt.Errorf("SHOW MASTER STATUS: %w", err)
		}
	}
	cols, _ := rows.Columns()
	if rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			rows.Close()
			return p, err
		}
		p = positionFromStatus(s.flavor, cols, vals)
	}
	rows.Close()
	if p.File == "" {
		return p, errors.New("SHOW MASTER STATUS is empty: the binary log is off")
	}
	if s.flavor == FlavorMariaDB {
		var gtid sql.NullString
		if err := q.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&gtid); err != nil {
			return p, err
		}
		p.GTID = gtid.String
	}
	return p, nil
}

// positionFromStatus reads one row of SHOW MASTER STATUS (MySQL 8.4: SHOW BINARY
// LOG STATUS): File, Position, …, and on MySQL Executed_Gtid_Set, which the
// server wraps after each comma ("uuid1:1-5,\nuuid2:1-3"); empty when
// gtid_mode=OFF, and then the position is file+offset only.
func positionFromStatus(flavor string, cols []string, vals []sql.NullString) Position {
	p := Position{Flavor: flavor}
	if len(vals) < 2 {
		return p
	}
	p.File = vals[0].String
	n, _ := strconv.ParseUint(vals[1].String, 10, 32)
	p.Pos = uint32(n)
	for i, c := range cols {
		if strings.EqualFold(c, "Executed_Gtid_Set") {
			p.GTID = strings.ReplaceAll(strings.ReplaceAll(vals[i].String, "\n", ""), " ", "")
		}
	}
	return p
}

// checkRetained fails with cdc.ErrPositionLost when p's binlog file was purged.
func (s *Source) checkRetained(ctx context.Context, p Position) error {
	if p.File == "" {
		return nil
	}
	files, _, err := s.binlogFiles(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(files, p.File) {
		return fmt.Errorf("mysql source %s: binlog %s of the checkpoint (%s) was purged: %w", s.where(), p.File, p, cdc.ErrPositionLost)
	}
	return nil
}

func (sn *snapshot) Position() cdc.Position { return sn.pos.Encode() }

// Close has nothing to release: each chunk's read is its own statement.
func (sn *snapshot) Close() error { return nil }

// chunkSpec is a primary-key range lo <= key < hi; a nil bound is open. Bounds
// hold the key values' text.
type chunkSpec struct {
	Lo [][]byte `json:"lo,omitempty"`
	Hi [][]byte `json:"hi,omitempty"`
}

func (c chunkSpec) id() string {
	if c.Lo == nil && c.Hi == nil {
		return "all"
	}
	b, _ := json.Marshal(c)
	h := sha256.Sum256(b)
	return "pk:" + hex.EncodeToString(h[:8])
}

// Chunks splits a table into primary-key ranges of about ChunkRows rows, found by
// walking the primary key index (LIMIT 1 OFFSET ChunkRows from each bound). A
// table estimated below ChunkRows rows is one chunk. IDs hash the bounds, so they
// are stable while the key values at the bounds exist.
func (sn *snapshot) Chunks(ctx context.Context, table cdc.Table) ([]cdc.Chunk, error) {
	info, ok := sn.src.table(table.Name)
	if !ok {
		return nil, fmt.Errorf("mysql snapshot: table %s was not opened", table.Name)
	}
	db, name := cdc.SplitName(table.Name)
	var est sql.NullInt64
	err := sn.src.db.QueryRowContext(ctx, `SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, db, name).Scan(&est)
	if err != nil {
		return nil, fmt.Errorf("mysql snapshot: size of %s: %w", table.Name, err)
	}
	step := max(sn.src.ChunkRows, 1)
	one := []cdc.Chunk{{Table: table.Name, ID: "all", Spec: []byte("{}"), EstimatedRows: est.Int64}}
	if est.Int64 < int64(step) {
		return one, nil
	}
	keyCols := make([]string, len(info.Table.Key))
	for i, k := range info.Table.Key {
		keyCols[i] = QuoteIdent(k)
	}
	var bounds [][][]byte
	var lo [][]byte
	for {
		q := "SELECT " + strings.Join(keyCols, ", ") + " FROM " + quoteName(table.Name)
		var args []any
		if lo != nil {
			cond, a := keyAfter(info.Table.Key, lo, true)
			q += " WHERE " + cond
			args = a
		}
		q += " ORDER BY " + strings.Join(keyCols, ", ") + " LIMIT 1 OFFSET " + strconv.Itoa(step)
		vals := make([][]byte, len(keyCols))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		rows, err := sn.src.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("mysql snapshot: chunk bounds of %s: %w", table.Name, err)
		}
		// Bounds are kept as text and sent back as text arguments, which the server
		// compares with the key columns in their own type.
		found := rows.Next()
		var bound [][]byte
		if found {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, err
			}
			for _, v := range vals {
				bound = append(bound, append([]byte{}, v...))
			}
		}
		rows.Close()
		if !found {
			break
		}
		bounds = append(bounds, bound)
		lo = bound
	}
	var chunks []cdc.Chunk
	var prev [][]byte
	for _, b := range append(bounds, nil) {
		c := chunkSpec{Lo: prev, Hi: b}
		spec, _ := json.Marshal(c)
		chunks = append(chunks, cdc.Chunk{Table: table.Name, ID: c.id(), Spec: spec, EstimatedRows: int64(step)})
		prev = b
	}
	return chunks, nil
}

// keyAfter renders "key > bound" (or >= when inclusive) over a composite key as
// nested ORs, which every MySQL and MariaDB version turns into an index range.
func keyAfter(key []string, bound [][]byte, inclusive bool) (string, []any) {
	return keyCompare(key, bound, ">", inclusive)
}

func keyCompare(key []string, bound [][]byte, op string, inclusive bool) (string, []any) {
	var ors []string
	var args []any
	for i := range key {
		var ands []string
		for j := 0; j < i; j++ {
			ands = append(ands, QuoteIdent(key[j])+" = ?")
			args = append(args, bound[j])
		}
		last := op
		if i == len(key)-1 && inclusive {
			last += "="
		}
		ands = append(ands, QuoteIdent(key[i])+" "+last+" ?")
		args = append(args, bound[i])
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")", args
}

// ReadChunk reads one chunk with one SELECT through a prepared statement (binary
// protocol, so floats arrive exact), decoding with the stream's decoder. Safe for
// concurrent use.
func (sn *snapshot) ReadChunk(ctx context.Context, chunk cdc.Chunk, emit func(rows []cdc.Row) error) error {
	info, ok := sn.src.table(chunk.Table)
	if !ok {
		return fmt.Errorf("mysql snapshot: table %s was not opened", chunk.Table)
	}
	var spec chunkSpec
	if len(chunk.Spec) > 0 {
		if err := json.Unmarshal(chunk.Spec, &spec); err != nil {
			return fmt.Errorf("mysql chunk spec of %s does not parse: %w", chunk.Table, err)
		}
	}
	var where []string
	var args []any
	if spec.Lo != nil {
		c, a := keyCompare(info.Table.Key, spec.Lo, ">", true)
		where, args = append(where, c), append(args, a...)
	}
	if spec.Hi != nil {
		c, a := keyCompare(info.Table.Key, spec.Hi, "<", false)
		where, args = append(where, c), append(args, a...)
	}
	if f := sn.src.filterFor(info.Table.Name); f != nil {
		fsql, fargs := f.SQL(QuoteIdent, func(int) string { return "?" })
		if fsql != "" {
			where, args = append(where, "("+fsql+")"), append(args, fargs...)
		}
	}
	q := selectColumns(info.Table) + " FROM " + quoteName(info.Table.Name)
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if err := ReadRows(ctx, sn.src.db, q, args, info.Table, info.types, emit); err != nil {
		return fmt.Errorf("mysql snapshot: read %s chunk %s: %w", chunk.Table, chunk.ID, err)
	}
	return nil
}

// ReadTable reads every current row of table, for `understudy verify`.
func (s *Source) ReadTable(ctx context.Context, table cdc.Table, emit func(rows []cdc.Row) error) error {
	if err := s.connect(ctx); err != nil {
		return err
	}
	info, ok := s.table(table.Name)
	if !ok {
		info = (&tableInfo{Table: table}).init()
	}
	q := selectColumns(info.Table) + " FROM " + quoteName(info.Table.Name)
	return ReadRows(ctx, s.db, q, nil, info.Table, info.types, emit)
}

func selectColumns(t cdc.Table) string {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = QuoteIdent(c.Name)
	}
	return "SELECT " + strings.Join(cols, ", ")
}

// ReadRows runs q as a prepared statement (binary protocol) and emits its rows,
// decoded with types (one per column of t, in order), in batches.
func ReadRows(ctx context.Context, db *sql.DB, q string, args []any, t cdc.Table, types []ColumnType, emit func([]cdc.Row) error) error {
	stmt, err := db.PrepareContext(ctx, q)
	if err != nil {
		return err
	}
	defer stmt.Close()
	rows, err := stmt.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	vals := make([]any, len(t.Columns))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	batch := make([]cdc.Row, 0, emitRows)
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		row := make(cdc.Row, len(vals))
		for i, c := range t.Columns {
			v, err := types[i].Decode(vals[i])
			if err != nil {
				return fmt.Errorf("column %s (%s): %w", c.Name, c.Type, err)
			}
			row[c.Name] = v
		}
		batch = append(batch, row)
		if len(batch) == emitRows {
			if err := emit(batch); err != nil {
				return err
			}
			batch = make([]cdc.Row, 0, emitRows)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return emit(batch)
	}
	return nil
}

// filterFor finds the row filter configured for a table, under its canonical name
// or under the name as written in the config.
func (s *Source) filterFor(name string) cdc.RowFilter {
	if f, ok := s.opts.Filters[name]; ok {
		return f
	}
	for _, configured := range s.opts.Tables {
		if s.qualify(configured) == name {
			if f, ok := s.opts.Filters[configured]; ok {
				return f
			}
		}
	}
	return nil
}
