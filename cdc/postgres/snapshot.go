package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/understudy/understudy/cdc"
)

// Snapshot sizing: chunks of about chunkRows rows, emitted in batches of emitRows.
const (
	chunkRows        = 100_000
	emitRows         = 1000
	guessRowsPerPage = 50 // when the table was never analyzed
)

// chunkRowsForTest lets tests make small chunks.
var chunkRowsForTest = chunkRows

// snapshot reads tables as of the slot's consistent point (fresh load) or as of
// now (resumed load; replaying the slot from resume converges either way).
type snapshot struct {
	src *Source
	pos LSN
	// repl is the replication connection that created the slot with
	// EXPORT_SNAPSHOT; the exported snapshot lives as long as it stays open and
	// idle, so it is closed only by Close. nil for a resumed load.
	repl *pgconn.PgConn
	name string // exported snapshot name, "" for a resumed load
}

// BeginSnapshot creates the slot understudy_<pipeline> for a fresh load (resume
// nil) and exports its snapshot: every ReadChunk sees exactly the data as of the
// slot's consistent point, which is Position. A stale slot left by a load that
// never checkpointed is dropped first (no checkpoint can refer to it).
//
// For a resumed load the slot must still exist, else the error wraps
// cdc.ErrPositionLost; chunks are then read in ordinary REPEATABLE READ
// transactions and Position is resume.
func (s *Source) BeginSnapshot(ctx context.Context, resume cdc.Position) (cdc.Snapshot, error) {
	if s.pool == nil {
		return nil, errors.New("postgres source: BeginSnapshot before Open")
	}
	exists, lost, err := s.slotState(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres snapshot: %w", err)
	}
	if resume != nil {
		lsn, err := ParsePosition(resume)
		if err != nil {
			return nil, err
		}
		if !exists || lost {
			return nil, fmt.Errorf("replication slot %s is gone or lost its WAL: %w", s.name, cdc.ErrPositionLost)
		}
		return &snapshot{src: s, pos: lsn}, nil
	}
	if exists {
		if err := s.writeReplicationState(ctx, `SELECT pg_drop_replication_slot($1)`, s.name); err != nil {
			return nil, fmt.Errorf("postgres snapshot: drop stale slot %s (is another understudy streaming from it?): %w", s.name, err)
		}
	}
	conn, err := s.connectReplication(ctx)
	if err != nil {
		return nil, err
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, conn, s.name, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
		SnapshotAction: "EXPORT_SNAPSHOT",
		Mode:           pglogrepl.LogicalReplication,
	})
	if err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("postgres snapshot: create slot %s: %w", s.name, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("postgres snapshot: slot consistent point: %w", err)
	}
	return &snapshot{src: s, pos: LSN(lsn), repl: conn, name: res.SnapshotName}, nil
}

func (sn *snapshot) Position() cdc.Position { return sn.pos.Encode() }

// Close ends the exported snapshot.
func (sn *snapshot) Close() error {
	if sn.repl != nil {
		err := sn.repl.Close(context.Background())
		sn.repl = nil
		return err
	}
	return nil
}

// chunkSpec is a CTID page range [From, To); To < 0 means open-ended, so rows in
// pages added after Chunks ran are still read.
type chunkSpec struct {
	From, To int64
	All      bool // partitioned table: no CTID bound
}

func (c chunkSpec) id() string {
	switch {
	case c.All:
		return "all"
	case c.To < 0:
		return fmt.Sprintf("ctid:%d-", c.From)
	}
	return fmt.Sprintf("ctid:%d-%d", c.From, c.To)
}

func parseChunkSpec(b []byte) (chunkSpec, error) {
	s := string(b)
	if s == "all" {
		return chunkSpec{All: true}, nil
	}
	rest, ok := strings.CutPrefix(s, "ctid:")
	from, to, ok2 := strings.Cut(rest, "-")
	if !ok || !ok2 {
		return chunkSpec{}, fmt.Errorf("postgres chunk spec %q is not ctid:FROM-TO", s)
	}
	c := chunkSpec{To: -1}
	var err error
	if c.From, err = strconv.ParseInt(from, 10, 64); err != nil {
		return chunkSpec{}, fmt.Errorf("postgres chunk spec %q: %w", s, err)
	}
	if to != "" {
		if c.To, err = strconv.ParseInt(to, 10, 64); err != nil {
			return chunkSpec{}, fmt.Errorf("postgres chunk spec %q: %w", s, err)
		}
	}
	return c, nil
}

// Chunks splits a table into CTID page ranges of about 100k rows, estimated from
// pg_class (no ANALYZE is run), ending with an open-ended range. PG14+ reads each
// range with a TID range scan, touching only its pages.
func (sn *snapshot) Chunks(ctx context.Context, table cdc.Table) ([]cdc.Chunk, error) {
	info, ok := sn.src.table(table.Name)
	if !ok {
		return nil, fmt.Errorf("postgres snapshot: table %s was not opened", table.Name)
	}
	var (
		relpages  int64
		reltuples float64
		kind      string
		sizePages int64
	)
	err := sn.src.pool.QueryRow(ctx, `
		SELECT relpages::int8, reltuples::float8, relkind::text,
		       pg_relation_size(oid) / current_setting('block_size')::int8
		FROM pg_catalog.pg_class WHERE oid = $1`, info.oid).Scan(&relpages, &reltuples, &kind, &sizePages)
	if err != nil {
		return nil, fmt.Errorf("postgres snapshot: size of %s: %w", table.Name, err)
	}
	if kind == "p" {
		// A partitioned table has no pages of its own; read it whole.
		est := int64(reltuples)
		return []cdc.Chunk{{Table: table.Name, ID: "all", Spec: []byte("all"), EstimatedRows: max(est, 0)}}, nil
	}
	perPage := float64(guessRowsPerPage)
	if relpages > 0 && reltuples > 0 {
		perPage = reltuples / float64(relpages)
	}
	pages := max(relpages, sizePages)
	step := max(int64(float64(chunkRowsForTest)/perPage), 1)
	var chunks []cdc.Chunk
	add := func(c chunkSpec, rows int64) {
		chunks = append(chunks, cdc.Chunk{Table: table.Name, ID: c.id(), Spec: []byte(c.id()), EstimatedRows: rows})
	}
	var from int64
	for ; from+step < pages; from += step {
		add(chunkSpec{From: from, To: from + step}, int64(float64(step)*perPage))
	}
	add(chunkSpec{From: from, To: -1}, int64(float64(max(pages-from, 0))*perPage))
	return chunks, nil
}

// ReadChunk reads one chunk on its own pooled connection, in a REPEATABLE READ
// transaction that imports the exported snapshot when there is one. Values are
// read in text format and decoded by decodeText, like the stream's. Safe for
// concurrent use.
func (sn *snapshot) ReadChunk(ctx context.Context, chunk cdc.Chunk, emit func(rows []cdc.Row) error) error {
	info, ok := sn.src.table(chunk.Table)
	if !ok {
		return fmt.Errorf("postgres snapshot: table %s was not opened", chunk.Table)
	}
	spec, err := parseChunkSpec(chunk.Spec)
	if err != nil {
		return err
	}
	query, args := sn.chunkQuery(info, spec)

	conn, err := sn.src.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres snapshot: %w", err)
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("postgres snapshot: %w", err)
	}
	defer tx.Rollback(context.Background())
	if sn.name != "" {
		// Snapshot names are server-generated ("00000003-0000001B-1"), safe to inline.
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+sn.name+"'"); err != nil {
			return fmt.Errorf("postgres snapshot: import snapshot (was the snapshot closed?): %w", err)
		}
	}
	// Text results: the same representation pgoutput sends, so both paths decode
	// through decodeText identically.
	qargs := append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)
	rows, err := tx.Query(ctx, query, qargs...)
	if err != nil {
		return fmt.Errorf("postgres snapshot: read %s chunk %s: %w", chunk.Table, chunk.ID, err)
	}
	defer rows.Close()
	cols := info.table.Columns
	batch := make([]cdc.Row, 0, emitRows)
	for rows.Next() {
		raw := rows.RawValues()
		row := make(cdc.Row, len(cols))
		for i, c := range cols {
			v, err := decodeText(info.types[i], raw[i])
			if err != nil {
				return fmt.Errorf("postgres snapshot: %s.%s: %w", chunk.Table, c.Name, err)
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
		return fmt.Errorf("postgres snapshot: read %s chunk %s: %w", chunk.Table, chunk.ID, err)
	}
	if len(batch) > 0 {
		if err := emit(batch); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// chunkQuery selects the table's columns in the chunk's CTID range, with the
// pipeline's row filter pushed down.
func (sn *snapshot) chunkQuery(info *tableInfo, spec chunkSpec) (string, []any) {
	var cols []string
	for _, c := range info.table.Columns {
		cols = append(cols, pgx.Identifier{c.Name}.Sanitize())
	}
	schema, rel := cdc.SplitName(info.table.Name)
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + pgx.Identifier{schema, rel}.Sanitize()
	var where []string
	if !spec.All {
		where = append(where, fmt.Sprintf("ctid >= '(%d,0)'::tid", spec.From))
		if spec.To >= 0 {
			where = append(where, fmt.Sprintf("ctid < '(%d,0)'::tid", spec.To))
		}
	}
	var args []any
	if f := sn.src.filterFor(info.table.Name); f != nil {
		sql, fargs := f.SQL(func(s string) string { return pgx.Identifier{s}.Sanitize() },
			func(i int) string { return "$" + strconv.Itoa(i) })
		if sql != "" {
			where = append(where, "("+sql+")")
			args = fargs
		}
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return q, args
}

// filterFor finds the row filter configured for a table, under its canonical
// name or under the name as written in the config.
func (s *Source) filterFor(name string) cdc.RowFilter {
	if f, ok := s.opts.Filters[name]; ok {
		return f
	}
	for _, configured := range s.opts.Tables {
		schema, rel := cdc.SplitName(configured)
		if schema == "" {
			schema = "public"
		}
		if schema+"."+rel == name {
			if f, ok := s.opts.Filters[configured]; ok {
				return f
			}
		}
	}
	return nil
}
