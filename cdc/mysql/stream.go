package mysql

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"

	"github.com/understudy/understudy/cdc"
)

// Stream reads the binlog from `from` and sends one Batch per transaction (split
// into batches of at most MaxBatch changes, only the last with Commit), each
// Commit at the transaction's XID (or the COMMIT of a non-transactional engine,
// or the end of a DDL statement).
//
// Row events are decoded with the schema history carried in the position: the
// selected tables' columns as of that point of the binlog. DDL on a selected table
// updates the history and reaches the target (rules in ddl and rename): ALTER and
// CREATE are parsed and applied to the history entry as it is at that point
// (ddl.go; statements the parser does not take re-read the table from
// information_schema) and announced as Batch.Schema, RENAME moves the history
// entry and announces it with cdc.Table.RenamedFrom, DROP and TRUNCATE become
// Truncate changes. Every row event is checked against the schema it is decoded
// with (column count and binlog types), so a binlog that the history cannot
// describe fails loudly instead of being misread.
func (s *Source) Stream(ctx context.Context, from cdc.Position, out chan<- cdc.Batch) error {
	if s.db == nil {
		return errors.New("mysql source: Stream before Open")
	}
	start, err := ParsePosition(from)
	if err != nil {
		return err
	}
	if start.File == "" && start.GTID == "" {
		return errors.New("mysql stream: no start position (the load records one)")
	}
	if err := s.checkRetained(ctx, start); err != nil {
		return err
	}
	host, port, err := hostPort(s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("mysql stream: address %s: %w", s.cfg.Addr, err)
	}
	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID:                s.replicaServerID(),
		Flavor:                  s.flavor,
		Host:                    host,
		Port:                    port,
		User:                    s.cfg.User,
		Password:                s.cfg.Passwd,
		Charset:                 "utf8mb4",
		TimestampStringLocation: time.UTC,
		// Datetimes as time.Time: formatting them to text and parsing that back
		// cost a tenth of the stream's CPU (types.go accepts both).
		ParseTime: true,
		// Decoded events the reader may hold ahead of the pipeline. go-mysql's
		// default (10240) let a backlog of 1,000-row events take gigabytes;
		// this bounds it and gives the reader backpressure.
		EventCacheCount:  128,
		HeartbeatPeriod:  10 * time.Second,
		ReadTimeout:      60 * time.Second,
		DisableRetrySync: true, // the pipeline restarts from its checkpoint
		Logger:           slog.New(slog.DiscardHandler),
	})
	defer syncer.Close()
	var streamer *replication.BinlogStreamer
	if start.GTID != "" {
		gset, err := gomysql.ParseGTIDSet(s.flavor, start.GTID)
		if err != nil {
			return fmt.Errorf("mysql stream: GTID set of the checkpoint: %w", err)
		}
		streamer, err = syncer.StartSyncGTID(gset)
		if err != nil {
			return s.streamErr(err, start)
		}
	} else {
		streamer, err = syncer.StartSync(gomysql.Position{Name: start.File, Pos: start.Pos})
		if err != nil {
			return s.streamErr(err, start)
		}
	}
	tables := start.Tables
	if tables == nil {
		tables = s.schemaNow()
	}
	st := &streamer_{src: s, out: out, cur: start, tables: map[string]*tableInfo{}}
	for k, v := range tables {
		st.tables[k] = v
	}
	st.cur.Tables = nil
	st.cur.Flavor = s.flavor
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return s.streamErr(err, st.cur)
		}
		if err := st.handle(ctx, ev); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}

// streamErr classifies a binlog error: a purged binlog or GTID means the
// checkpoint is lost and only a reset helps.
func (s *Source) streamErr(err error, at Position) error {
	msg := err.Error()
	if strings.Contains(msg, "1236") || strings.Contains(msg, "purged") ||
		strings.Contains(msg, "Could not find first log file") || strings.Contains(msg, "Could not find GTID") {
		return fmt.Errorf("mysql stream %s: the server no longer has the binlog at %s (%s): %w", s.where(), at, msg, cdc.ErrPositionLost)
	}
	return fmt.Errorf("mysql stream %s at %s: %w", s.where(), at, err)
}

// streamer_ decodes one binlog connection's events.
type streamer_ struct {
	src    *Source
	out    chan<- cdc.Batch
	cur    Position              // file/pos of the last event read; GTID of the last commit
	tables map[string]*tableInfo // schema history: selected tables as of cur

	schemaJSON []byte // tables encoded, cached until a DDL changes them

	pending    []cdc.Change
	schema     []cdc.Table // schema changes to announce with the next batch
	commitTime time.Time

	parser *parser.Parser // for ALTER/CREATE TABLE (ddl.go), made on first use
	// sqlMode is the sql_mode the current DDL statement was written under (the
	// binlog records it with each statement); it decides how " and \ read.
	sqlMode uint64
}

func (st *streamer_) handle(ctx context.Context, ev *replication.BinlogEvent) error {
	switch e := ev.Event.(type) {
	case *replication.RotateEvent:
		st.cur.File, st.cur.Pos = string(e.NextLogName), uint32(e.Position)
		return nil
	case *replication.RowsEvent:
		st.advance(ev)
		return st.rows(ctx, ev, e)
	case *replication.XIDEvent:
		st.advance(ev)
		return st.commit(ctx, ev, e.GSet)
	case *replication.QueryEvent:
		st.advance(ev)
		return st.query(ctx, ev, e)
	}
	st.advance(ev)
	return nil
}

// advance moves the file offset past ev (artificial events carry LogPos 0).
func (st *streamer_) advance(ev *replication.BinlogEvent) {
	if ev.Header.LogPos != 0 && ev.Header.Flags&replication.LOG_EVENT_ARTIFICIAL_F == 0 {
		st.cur.Pos = ev.Header.LogPos
	}
}

func (st *streamer_) rows(ctx context.Context, ev *replication.BinlogEvent, e *replication.RowsEvent) error {
	name := string(e.Table.Schema) + "." + string(e.Table.Table)
	info, ok := st.tables[name]
	if !ok {
		return nil
	}
	if err := checkShape(info, e.Table); err != nil {
		return fmt.Errorf("mysql stream: %s at %s: %w; the schema history cannot decode this binlog, run `understudy reset`", name, st.cur, err)
	}
	var op cdc.Op
	switch ev.Header.EventType {
	case replication.WRITE_ROWS_EVENTv0, replication.WRITE_ROWS_EVENTv1, replication.WRITE_ROWS_EVENTv2,
		replication.MARIADB_WRITE_ROWS_COMPRESSED_EVENT_V1:
		op = cdc.Insert
	case replication.UPDATE_ROWS_EVENTv0, replication.UPDATE_ROWS_EVENTv1, replication.UPDATE_ROWS_EVENTv2,
		replication.PARTIAL_UPDATE_ROWS_EVENT, replication.MARIADB_UPDATE_ROWS_COMPRESSED_EVENT_V1:
		op = cdc.Update
	case replication.DELETE_ROWS_EVENTv0, replication.DELETE_ROWS_EVENTv1, replication.DELETE_ROWS_EVENTv2,
		replication.MARIADB_DELETE_ROWS_COMPRESSED_EVENT_V1:
		op = cdc.Delete
	default:
		return nil
	}
	if st.commitTime.IsZero() {
		st.commitTime = time.Unix(int64(ev.Header.Timestamp), 0).UTC()
	}
	step := 1
	if op == cdc.Update {
		step = 2
	}
	for i := 0; i+step-1 < len(e.Rows); i += step {
		first, err := decodeRow(info, e.Rows[i])
		if err != nil {
			return fmt.Errorf("mysql stream: %s at %s: %w", name, st.cur, err)
		}
		var c cdc.Change
		switch op {
		case cdc.Insert:
			c = cdc.Change{Table: name, Op: cdc.Insert, Key: keyOf(info, first), After: first}
		case cdc.Update:
			after, err := decodeRow(info, e.Rows[i+1])
			if err != nil {
				return fmt.Errorf("mysql stream: %s at %s: %w", name, st.cur, err)
			}
			c = cdc.Change{Table: name, Op: cdc.Update, Key: keyOf(info, first), Before: first, After: after}
		case cdc.Delete:
			c = cdc.Change{Table: name, Op: cdc.Delete, Key: keyOf(info, first), Before: first}
		}
		c.CommitTime = st.commitTime
		if err := st.add(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// checkShape verifies that a row event's table map matches the schema it is about
// to be decoded with.
func checkShape(info *tableInfo, tm *replication.TableMapEvent) error {
	if int(tm.ColumnCount) != len(info.types) {
		return fmt.Errorf("binlog has %d columns, schema history %d", tm.ColumnCount, len(info.types))
	}
	for i, tp := range tm.ColumnType {
		if !binlogTypeFits(info.types[i], tp) {
			return fmt.Errorf("column %s (%s) has binlog type %d", info.Table.Columns[i].Name, info.Table.Columns[i].Type, tp)
		}
	}
	if len(tm.ColumnName) == len(info.types) { // binlog_row_metadata=FULL
		for i, n := range tm.ColumnName {
			if string(n) != info.Table.Columns[i].Name {
				return fmt.Errorf("binlog column %d is %s, schema history has %s", i, n, info.Table.Columns[i].Name)
			}
		}
	}
	return nil
}

// binlogTypeFits reports whether a table map's column type can be a column of ct.
func binlogTypeFits(ct ColumnType, tp byte) bool {
	switch tp {
	case gomysql.MYSQL_TYPE_TINY, gomysql.MYSQL_TYPE_SHORT, gomysql.MYSQL_TYPE_INT24,
		gomysql.MYSQL_TYPE_LONG, gomysql.MYSQL_TYPE_LONGLONG:
		return ct.Kind == cdc.KindInt && ct.Data != "year" || ct.Kind == cdc.KindUint && ct.Data != "bit" || ct.Kind == cdc.KindBool
	case gomysql.MYSQL_TYPE_YEAR:
		return ct.Data == "year"
	case gomysql.MYSQL_TYPE_NEWDECIMAL, gomysql.MYSQL_TYPE_DECIMAL:
		return ct.Kind == cdc.KindDecimal
	case gomysql.MYSQL_TYPE_FLOAT, gomysql.MYSQL_TYPE_DOUBLE:
		return ct.Kind == cdc.KindFloat
	case gomysql.MYSQL_TYPE_BIT:
		return ct.Data == "bit"
	case gomysql.MYSQL_TYPE_DATE, gomysql.MYSQL_TYPE_NEWDATE:
		return ct.Kind == cdc.KindDate
	case gomysql.MYSQL_TYPE_DATETIME, gomysql.MYSQL_TYPE_DATETIME2, gomysql.MYSQL_TYPE_TIMESTAMP, gomysql.MYSQL_TYPE_TIMESTAMP2:
		return ct.Kind == cdc.KindTimestamp
	case gomysql.MYSQL_TYPE_TIME, gomysql.MYSQL_TYPE_TIME2:
		return ct.Kind == cdc.KindTime
	case gomysql.MYSQL_TYPE_JSON:
		return ct.Kind == cdc.KindJSON
	}
	// Strings, blobs, enum and set share STRING/VAR_STRING/VARCHAR/BLOB codes.
	return ct.Kind == cdc.KindString || ct.Kind == cdc.KindBytes || ct.Kind == cdc.KindJSON
}

func decodeRow(info *tableInfo, raw []any) (cdc.Row, error) {
	row := make(cdc.Row, len(info.types))
	for i, c := range info.Table.Columns {
		if _, partial := raw[i].(*replication.JsonDiff); partial {
			return nil, fmt.Errorf("column %s: partial JSON updates (binlog_row_value_options=PARTIAL_JSON) are not supported", c.Name)
		}
		v, err := info.binlog[i].Decode(raw[i])
		if err != nil {
			return nil, fmt.Errorf("column %s (%s): %w", c.Name, c.Type, err)
		}
		row[c.Name] = v
	}
	return row, nil
}

func keyOf(info *tableInfo, row cdc.Row) cdc.Row {
	k := make(cdc.Row, len(info.Table.Key))
	for _, n := range info.Table.Key {
		k[n] = row[n]
	}
	return k
}

// add appends a change, sending a part of a large transaction when MaxBatch is
// reached (without Commit: it ends mid-transaction).
func (st *streamer_) add(ctx context.Context, c cdc.Change) error {
	st.pending = append(st.pending, c)
	if len(st.pending) >= st.src.MaxBatch {
		return st.send(ctx, cdc.Batch{Schema: st.takeSchema(), Changes: st.takePending()})
	}
	return nil
}

func (st *streamer_) takePending() []cdc.Change {
	p := st.pending
	st.pending = nil
	return p
}

func (st *streamer_) takeSchema() []cdc.Table {
	s := st.schema
	st.schema = nil
	return s
}

func (st *streamer_) send(ctx context.Context, b cdc.Batch) error {
	select {
	case st.out <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// commit ends a transaction: the batch's Commit is the position after it.
func (st *streamer_) commit(ctx context.Context, ev *replication.BinlogEvent, gset gomysql.GTIDSet) error {
	if gset != nil {
		st.cur.GTID = gset.String()
	}
	t := st.commitTime
	if t.IsZero() {
		t = time.Unix(int64(ev.Header.Timestamp), 0).UTC()
	}
	st.commitTime = time.Time{}
	b := cdc.Batch{Schema: st.takeSchema(), Changes: st.takePending(), Commit: st.encode(), CommitTime: t}
	return st.send(ctx, b)
}

// encode renders the current position with the schema history.
func (st *streamer_) encode() cdc.Position {
	if st.schemaJSON == nil {
		st.schemaJSON, _ = json.Marshal(st.tables)
	}
	head := st.cur
	head.Tables = nil
	b, _ := json.Marshal(head)
	// Splice the cached tables into the object: {"flavor":…,"tables":{…}}.
	out := make([]byte, 0, len(b)+len(st.schemaJSON)+10)
	out = append(out, b[:len(b)-1]...)
	out = append(out, `,"tables":`...)
	out = append(out, st.schemaJSON...)
	out = append(out, '}')
	return out
}

var (
	ddlTable = regexp.MustCompile("(?is)^\\s*(?:/\\*.*?\\*/\\s*)*(ALTER|CREATE|DROP|RENAME|TRUNCATE)\\s+(?:ONLINE\\s+|IGNORE\\s+|TEMPORARY\\s+|OR\\s+REPLACE\\s+)*(TABLE|TABLES)?\\s*(?:IF\\s+(?:NOT\\s+)?EXISTS\\s+)?(.*)$")
	// tableName also reads "quoted" names: a statement can only quote a table
	// name that way under sql_mode ANSI_QUOTES (elsewhere it would be a string,
	// which the server rejects there), so no mode check is needed.
	tableName = regexp.MustCompile("^\\s*((?:`(?:[^`]|``)+`|\"(?:[^\"]|\"\")+\"|[\\w$]+)(?:\\s*\\.\\s*(?:`(?:[^`]|``)+`|\"(?:[^\"]|\"\")+\"|[\\w$]+))?)")
)

// query handles a QueryEvent: COMMIT of a non-transactional engine ends a
// transaction; DDL on a selected table updates the schema history (and the
// target, through Batch.Schema and Truncate changes) and ends its own transaction.
// The rules per statement are in ddl(); docs/mysql.md lists them for users.
func (st *streamer_) query(ctx context.Context, ev *replication.BinlogEvent, e *replication.QueryEvent) error {
	q := strings.TrimSpace(string(e.Query))
	switch strings.ToUpper(q) {
	case "BEGIN", "XA START", "SAVEPOINT":
		return nil
	case "COMMIT":
		return st.commit(ctx, ev, e.GSet)
	}
	if m := ddlTable.FindStringSubmatch(q); m != nil && (m[2] != "" || strings.EqualFold(m[1], "TRUNCATE")) {
		st.sqlMode, _ = sqlModeOf(e.StatusVars)
		if err := st.ddl(ctx, ev, string(e.Schema), q, m); err != nil {
			return err
		}
	}
	// Any other statement (GRANT, CREATE DATABASE, DROP INDEX …) leaves the
	// selected tables alone but still ends a transaction.
	return st.commit(ctx, ev, e.GSet)
}

// ddl applies one table DDL statement to the schema history:
//
//   - TRUNCATE: a Truncate change.
//   - DROP TABLE: a Truncate change (the target table is cleared, not dropped:
//     see docs/mysql.md) and the table leaves the history, so a later CREATE of
//     the name starts it afresh.
//   - CREATE TABLE of a selected name: described from the statement and
//     announced (the sink creates it or adds columns); CREATE OR REPLACE also
//     clears it first; CREATE TABLE IF NOT EXISTS of a table the history has
//     does nothing.
//   - ALTER TABLE: applied to the history entry and announced; ALTER … RENAME
//     TO is a rename (of the entry with the statement's other changes).
//
// CREATE and ALTER that do not parse, or hold what ddl.go does not model, are
// read from information_schema instead (fallback).
//   - RENAME TABLE: see rename.
//
// Temporary tables are never replicated.
func (st *streamer_) ddl(ctx context.Context, ev *replication.BinlogEvent, db, q string, m []string) error {
	verb := strings.ToUpper(m[1])
	head := strings.ToUpper(q[:len(q)-len(m[3])])
	if strings.Contains(head, "TEMPORARY") {
		return nil
	}
	at := time.Unix(int64(ev.Header.Timestamp), 0).UTC()
	names := statementTables(verb, m[3], db)
	if len(names) == 0 {
		return nil
	}
	switch verb {
	case "TRUNCATE":
		if _, ok := st.tables[names[0]]; ok {
			return st.add(ctx, cdc.Change{Table: names[0], Op: cdc.Truncate, CommitTime: at})
		}
	case "DROP":
		for _, name := range names {
			if _, ok := st.tables[name]; !ok {
				continue
			}
			if err := st.add(ctx, cdc.Change{Table: name, Op: cdc.Truncate, CommitTime: at}); err != nil {
				return err
			}
			delete(st.tables, name)
			st.schemaJSON = nil
		}
	case "CREATE":
		name := names[0]
		if !st.src.selected(name) {
			return nil
		}
		stmt, err := st.parseDDL(q[:len(q)-len(m[3])], m[3])
		create, _ := stmt.(*ast.CreateTableStmt)
		if err == nil && create == nil {
			err = unmodeled("not a CREATE TABLE statement")
		}
		_, exists := st.tables[name]
		if err == nil && create.IfNotExists && exists {
			return nil // the table was there: the statement did nothing
		}
		if exists && strings.Contains(head, "REPLACE") {
			if err := st.add(ctx, cdc.Change{Table: name, Op: cdc.Truncate, CommitTime: at}); err != nil {
				return err
			}
		}
		var info *tableInfo
		if err == nil {
			info, err = st.src.created(ctx, name, db, create, func(n string) (*tableInfo, bool) { t, ok := st.tables[n]; return t, ok })
		}
		if err != nil {
			return st.fallback(ctx, name, err, func() error { return st.redescribe(ctx, name) })
		}
		st.install(name, info)
	case "ALTER":
		name := names[0]
		old, known := st.tables[name]
		stmt, err := st.parseDDL(q[:len(q)-len(m[3])], m[3])
		alter, _ := stmt.(*ast.AlterTableStmt)
		if err == nil && alter == nil {
			err = unmodeled("not an ALTER TABLE statement")
		}
		if err == nil && known {
			info, to, err := st.src.altered(old, db, alter)
			if err == nil {
				if to == "" || to == name {
					st.install(name, info)
					return nil
				}
				// The other changes of ALTER … RENAME TO apply first; the
				// entry then moves with them.
				st.tables[name] = info
				st.schemaJSON = nil
				return st.rename(ctx, []string{name, to}, false)
			}
			return st.fallback(ctx, name, err, func() error { return st.alterFromInformationSchema(ctx, name, db, m[3]) })
		}
		if err == nil {
			// Not in the history: only a rename to a selected name matters.
			for _, spec := range alter.Specs {
				if spec.Tp == ast.AlterTableRenameTable {
					return st.rename(ctx, []string{name, qualified(spec.NewTable, db)}, false)
				}
			}
			return nil
		}
		if !known && !st.src.selected(alterRenameTo(m[3], db)) {
			return nil
		}
		return st.fallback(ctx, name, err, func() error { return st.alterFromInformationSchema(ctx, name, db, m[3]) })
	case "RENAME":
		return st.rename(ctx, names, false)
	}
	return nil
}

// rename applies RENAME TABLE a TO b[, c TO d …] (pairs, in order, as the server
// does). For each pair:
//
//   - a and b both selected: followed. The history entry moves to b and b is
//     announced with RenamedFrom a, so the sink moves the target table.
//   - a selected, and another table is renamed to a in the same statement (the
//     cut-over of gh-ost and pt-online-schema-change: RENAME TABLE t TO _t_old,
//     _t_new TO t): a keeps its target table and rows, which those tools keep
//     equal to the old table's, and is re-described with its new definition.
//   - a selected, b not: the stream stops; the error says how to follow.
//   - b selected, a not (and not such a swap): b's rows were never replicated;
//     the stream stops and asks for a reset.
//
// redescribeAfter re-describes the final names too (ALTER … RENAME with other
// changes).
func (st *streamer_) rename(ctx context.Context, names []string, redescribeAfter bool) error {
	if len(names)%2 != 0 {
		return fmt.Errorf("mysql stream: RENAME at %s names %d tables, not pairs", st.cur, len(names))
	}
	type pair struct{ from, to string }
	var pairs []pair
	for i := 0; i < len(names); i += 2 {
		pairs = append(pairs, pair{names[i], names[i+1]})
	}
	swappedIn := func(name string, after int) bool {
		for _, p := range pairs[after+1:] {
			if p.to == name {
				return true
			}
		}
		return false
	}
	movedAway := map[string]bool{} // selected names renamed to an unselected name, awaiting a swap
	var replaced []string
	for i, p := range pairs {
		_, fromKnown := st.tables[p.from]
		toSel := st.src.selected(p.to)
		switch {
		case fromKnown && toSel:
			// A rename keeps the columns: the history entry moves as it is (no
			// information_schema read, which could be of a later time).
			st.move(p.from, p.to)
		case fromKnown && swappedIn(p.from, i):
			movedAway[p.from] = true
		case fromKnown:
			return fmt.Errorf("mysql stream: at %s table %s was renamed to %s, which is not in the pipeline's tables: "+
				"replace %s with %s in tables: (and rules:) and restart sync, which then follows the rename on the target (no reload needed); "+
				"or remove %s from tables: and restart", st.cur, p.from, p.to, p.from, p.to, p.from)
		case toSel && movedAway[p.to]:
			delete(movedAway, p.to)
			replaced = append(replaced, p.to)
		case toSel:
			return fmt.Errorf("mysql stream: at %s table %s appeared by RENAME of %s, whose rows were never replicated: run `understudy reset` to load it", st.cur, p.to, p.from)
		}
	}
	for _, name := range replaced {
		if err := st.redescribe(ctx, name); err != nil {
			return err
		}
	}
	if redescribeAfter {
		for _, p := range pairs {
			if _, ok := st.tables[p.to]; ok {
				if err := st.redescribe(ctx, p.to); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// move renames a history entry and announces the table under its new name.
func (st *streamer_) move(from, to string) {
	info := st.tables[from].clone()
	info.Table.Name = to
	info.init()
	delete(st.tables, from)
	st.tables[to] = info
	st.schemaJSON = nil
	announced := info.Table
	announced.RenamedFrom = from
	st.schema = append(st.schema, announced)
	st.src.mu.Lock()
	st.src.tables[to] = info
	st.src.mu.Unlock()
}

// alterFromInformationSchema follows an ALTER TABLE that was not parsed: it
// re-reads the table (and follows an ALTER … RENAME TO).
func (st *streamer_) alterFromInformationSchema(ctx context.Context, name, db, rest string) error {
	if to := alterRenameTo(rest, db); to != "" {
		// Other changes in the same ALTER (a comma) need a fresh description.
		return st.rename(ctx, []string{name, to}, strings.Contains(rest, ","))
	}
	if _, ok := st.tables[name]; ok {
		return st.redescribe(ctx, name)
	}
	return nil
}

// fallback handles a DDL statement of a selected table that the parser path
// could not apply (why): a primary key dropped for good stops the stream, as
// describe would; anything else is read from information_schema by read, and
// logged by table name (never the statement, which may hold literals).
func (st *streamer_) fallback(ctx context.Context, name string, why error, read func() error) error {
	if errors.Is(why, errNoKey) {
		return fmt.Errorf("mysql stream: after DDL at %s: %s", st.cur, noKeyProblem(name))
	}
	st.src.logger().Info("mysql stream: DDL not parsed, table re-read from information_schema (exact only while the stream is live)",
		"table", name, "why", why.Error(), "at", st.cur.String())
	return read()
}

// install puts a parsed description into the history and announces it.
func (st *streamer_) install(name string, info *tableInfo) {
	st.tables[name] = info
	st.schemaJSON = nil
	st.schema = append(st.schema, info.Table)
	st.src.mu.Lock()
	st.src.tables[name] = info
	st.src.mu.Unlock()
}

// redescribe reads name from information_schema into the history and announces
// it: the fallback for DDL that is not parsed, and the gh-ost cut-over's new
// definition (RENAME of an unselected shadow table).
//
// The DDL is in the binlog once it completed, so information_schema shows the
// table as of this point unless a later DDL already ran (a replay after an
// outage); checkShape then catches a history that does not fit the row events
// that follow, and the stream stops rather than misread (docs/mysql.md).
func (st *streamer_) redescribe(ctx context.Context, name string) error {
	info, problem, err := st.src.describe(ctx, name)
	if err != nil {
		return fmt.Errorf("mysql stream: describe %s after DDL: %w", name, err)
	}
	if problem != "" {
		return fmt.Errorf("mysql stream: after DDL at %s: %s", st.cur, problem)
	}
	st.install(name, info)
	return nil
}

var alterRename = regexp.MustCompile("(?is)(?:^|,)\\s*RENAME\\s+(?:TO\\s+|AS\\s+)?((?:`(?:[^`]|``)+`|[\\w$]+)(?:\\s*\\.\\s*(?:`(?:[^`]|``)+`|[\\w$]+))?)")

// alterRenameTo returns the new name of ALTER TABLE t … RENAME [TO|AS] u, or "".
// rest starts with the table name.
func alterRenameTo(rest, db string) string {
	m := tableName.FindStringSubmatch(rest)
	if m == nil {
		return ""
	}
	specs := rest[len(m[0]):]
	r := alterRename.FindStringSubmatch(specs)
	if r == nil {
		return ""
	}
	switch strings.ToUpper(r[1]) {
	case "COLUMN", "INDEX", "KEY":
		return ""
	}
	return qualifyIdent(r[1], db)
}

// statementTables lists the "db.table" names a DDL statement's tail names: the
// first for ALTER/CREATE/TRUNCATE, each listed for DROP, both sides for RENAME.
func statementTables(verb, rest, db string) []string {
	var out []string
	for {
		m := tableName.FindStringSubmatch(rest)
		if m == nil {
			break
		}
		out = append(out, qualifyIdent(m[1], db))
		rest = rest[len(m[0]):]
		switch verb {
		case "DROP":
			rest = strings.TrimSpace(rest)
			if !strings.HasPrefix(rest, ",") {
				return out
			}
			rest = rest[1:]
		case "RENAME":
			rest = strings.TrimSpace(rest)
			if r, ok := cutPrefixFold(rest, "TO "); ok {
				rest = r
			} else if strings.HasPrefix(rest, ",") {
				rest = rest[1:]
			} else {
				return out
			}
		default:
			return out
		}
	}
	return out
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// qualifyIdent turns `db`.`t`, "db"."t" (ANSI_QUOTES), db.t or t (in db) into
// "db.t".
func qualifyIdent(s, db string) string {
	var parts []string
	for _, p := range splitDot(s) {
		p = strings.TrimSpace(p)
		if len(p) >= 2 && (p[0] == '`' || p[0] == '"') {
			q := p[:1]
			p = strings.ReplaceAll(p[1:len(p)-1], q+q, q)
		}
		parts = append(parts, p)
	}
	if len(parts) == 1 {
		return db + "." + parts[0]
	}
	return parts[0] + "." + parts[1]
}

func splitDot(s string) []string {
	var in byte // the quote we are inside, or 0
	for i := 0; i < len(s); i++ {
		switch {
		case in == 0 && (s[i] == '`' || s[i] == '"'):
			in = s[i]
		case in != 0 && s[i] == in:
			in = 0 // a doubled quote closes and reopens: same result
		case s[i] == '.' && in == 0:
			return []string{s[:i], s[i+1:]}
		}
	}
	return []string{s}
}

// sqlModeOf reads sql_mode from a Query event's status variables: the session
// mode the statement ran under. MySQL and MariaDB write Q_FLAGS2_CODE (0, four
// bytes) first and Q_SQL_MODE_CODE (1, eight bytes) next; a statement written
// without them (very old servers) reports ok false, which reads as the default
// mode.
func sqlModeOf(vars []byte) (mode uint64, ok bool) {
	for len(vars) > 0 {
		switch vars[0] {
		case 0: // Q_FLAGS2_CODE
			if len(vars) < 5 {
				return 0, false
			}
			vars = vars[5:]
		case 1: // Q_SQL_MODE_CODE
			if len(vars) < 9 {
				return 0, false
			}
			return binary.LittleEndian.Uint64(vars[1:9]), true
		default:
			return 0, false
		}
	}
	return 0, false
}
