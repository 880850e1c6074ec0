package mysql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/understudy/understudy/cdc"
)

// Stream reads the binlog from `from` and sends one Batch per transaction (split
// into batches of at most MaxBatch changes, only the last with Commit), each
// Commit at the transaction's XID (or the COMMIT of a non-transactional engine,
// or the end of a DDL statement).
//
// Row events are decoded with the schema history carried in the position: the
// selected tables' columns as of that point of the binlog. A DDL statement on a
// selected table (ALTER, CREATE, RENAME) re-reads the table from
// information_schema and announces it as Batch.Schema; every row event is checked
// against the schema it is decoded with (column count and binlog types), so a
// binlog that the history cannot describe fails loudly instead of being misread.
// TRUNCATE of a selected table becomes a Truncate change.
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
		HeartbeatPeriod:         10 * time.Second,
		ReadTimeout:             60 * time.Second,
		DisableRetrySync:        true, // the pipeline restarts from its checkpoint
		Logger:                  slog.New(slog.DiscardHandler),
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
	ddlTable  = regexp.MustCompile("(?is)^\\s*(?:/\\*.*?\\*/\\s*)*(ALTER|CREATE|DROP|RENAME|TRUNCATE)\\s+(?:ONLINE\\s+|IGNORE\\s+|TEMPORARY\\s+|OR\\s+REPLACE\\s+)*(TABLE|TABLES)?\\s*(?:IF\\s+(?:NOT\\s+)?EXISTS\\s+)?(.*)$")
	tableName = regexp.MustCompile("^\\s*((?:`(?:[^`]|``)+`|[\\w$]+)(?:\\s*\\.\\s*(?:`(?:[^`]|``)+`|[\\w$]+))?)")
)

// query handles a QueryEvent: COMMIT of a non-transactional engine ends a
// transaction; DDL on a selected table updates the schema history (or truncates)
// and ends its own transaction.
func (st *streamer_) query(ctx context.Context, ev *replication.BinlogEvent, e *replication.QueryEvent) error {
	q := strings.TrimSpace(string(e.Query))
	switch strings.ToUpper(q) {
	case "BEGIN", "XA START", "SAVEPOINT":
		return nil
	case "COMMIT":
		return st.commit(ctx, ev, e.GSet)
	}
	m := ddlTable.FindStringSubmatch(q)
	if m == nil {
		return nil // other statements (GRANT, CREATE USER …) do not touch selected tables
	}
	verb := strings.ToUpper(m[1])
	if m[2] == "" && verb != "TRUNCATE" {
		return st.commit(ctx, ev, e.GSet) // CREATE DATABASE, DROP INDEX …: still a transaction end
	}
	names := statementTables(verb, m[3], string(e.Schema))
	for _, name := range names {
		if _, ok := st.tables[name]; !ok {
			continue
		}
		switch verb {
		case "TRUNCATE":
			if err := st.add(ctx, cdc.Change{Table: name, Op: cdc.Truncate, CommitTime: time.Unix(int64(ev.Header.Timestamp), 0).UTC()}); err != nil {
				return err
			}
		case "DROP":
			// The target keeps its table; rows stop arriving.
		default:
			// The DDL is in the binlog once it completed, so information_schema has
			// the table as of this point unless a later DDL already ran; checkShape
			// catches a history that does not fit the row events that follow.
			info, problem, err := st.src.describe(ctx, name)
			if err != nil {
				return fmt.Errorf("mysql stream: describe %s after DDL: %w", name, err)
			}
			if problem != "" {
				return fmt.Errorf("mysql stream: after DDL at %s: %s", st.cur, problem)
			}
			st.tables[name] = info
			st.schemaJSON = nil
			st.schema = append(st.schema, info.Table)
			st.src.mu.Lock()
			st.src.tables[name] = info
			st.src.mu.Unlock()
		}
	}
	return st.commit(ctx, ev, e.GSet)
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

// qualifyIdent turns `db`.`t`, db.t or t (in db) into "db.t".
func qualifyIdent(s, db string) string {
	var parts []string
	for _, p := range splitDot(s) {
		p = strings.TrimSpace(p)
		if strings.HasPrefix(p, "`") {
			p = strings.ReplaceAll(p[1:len(p)-1], "``", "`")
		}
		parts = append(parts, p)
	}
	if len(parts) == 1 {
		return db + "." + parts[0]
	}
	return parts[0] + "." + parts[1]
}

func splitDot(s string) []string {
	in := false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '`':
			in = !in
		case s[i] == '.' && !in:
			return []string{s[:i], s[i+1:]}
		}
	}
	return []string{s}
}
