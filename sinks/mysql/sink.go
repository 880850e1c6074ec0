// Package mysql is the MySQL/MariaDB sink: it creates the target tables, loads
// snapshot rows with multi-row INSERT … ON DUPLICATE KEY UPDATE, applies changes
// as batched upserts and deletes in one transaction per call, and keeps the
// pipeline's checkpoint in that same transaction (table understudy_checkpoints).
//
// The target database carries the replica marker table understudy_replica,
// created when understudy prepares an empty database. A non-empty database without
// it, or the source database itself, is refused before anything is written.
//
// Table names: a source table "db.t" (or "schema.t") becomes `t` in the target URL's
// database. Column types come from the source's own type when it is a MySQL type
// (a MySQL source), else from the column's kind.
package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/understudy/understudy/cdc"
	mysqlsrc "github.com/understudy/understudy/cdc/mysql"
	"github.com/understudy/understudy/sinks"
)

func init() {
	sinks.Register(Open, "mysql", "mariadb")
}

var (
	_ sinks.Sink                      = (*Sink)(nil)
	_ sinks.TransactionalCheckpointer = (*Sink)(nil)
	_ sinks.TableReader               = (*Sink)(nil)
)

const (
	markerTable      = "understudy_replica"
	checkpointsTable = "understudy_checkpoints"
)

// Sink writes to one MySQL/MariaDB database.
type Sink struct {
	opts sinks.Options
	cfg  *driver.Config
	db   *sql.DB

	mu     sync.Mutex
	tables map[string]cdc.Table // prepared tables by source name
	marked bool                 // the replica check passed

	noLocalInfile atomic.Bool // the server refused LOAD DATA LOCAL: Load upserts
}

// Open connects to the target; it writes nothing (Prepare checks the marker first).
func Open(ctx context.Context, opts sinks.Options) (sinks.Sink, error) {
	cfg, err := mysqlsrc.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("mysql target of pipeline %s: %w", opts.Pipeline, err)
	}
	// Statements carry their values inline: one round trip per statement.
	cfg.InterpolateParams = true
	cfg.MaxAllowedPacket = 0 // read it from the server
	conn, err := driver.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql target %s/%s: %w", cfg.Addr, cfg.DBName, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("mysql target %s/%s: cannot connect: %w", cfg.Addr, cfg.DBName, err)
	}
	return &Sink{opts: opts, cfg: cfg, db: db, tables: map[string]cdc.Table{}}, nil
}

func (s *Sink) where() string { return s.cfg.Addr + "/" + s.cfg.DBName }

// Close releases connections.
func (s *Sink) Close() error { return s.db.Close() }

// targetName is the quoted target table of a source table name.
func (s *Sink) targetName(name string) string {
	_, t := cdc.SplitName(name)
	return mysqlsrc.QuoteIdent(s.cfg.DBName) + "." + mysqlsrc.QuoteIdent(t)
}

// checkReplica passes when the target database carries the marker; when it is
// empty and mark is set, it creates the marker. It refuses the source database.
func (s *Sink) checkReplica(ctx context.Context, mark bool) error {
	s.mu.Lock()
	done := s.marked
	s.mu.Unlock()
	if done {
		return nil
	}
	if err := s.refuseSource(ctx); err != nil {
		return err
	}
	var tables []string
	rows, err := s.db.QueryContext(ctx, `SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?`, s.cfg.DBName)
	if err != nil {
		return fmt.Errorf("mysql target %s: %w", s.where(), err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, n)
	}
	rows.Close()
	marked := false
	for _, n := range tables {
		if n == markerTable {
			marked = true
		}
	}
	if !marked {
		if len(tables) > 0 || !mark {
			return fmt.Errorf("mysql target %s holds %d tables but no %s table: %w (point the target at an empty database, which understudy then marks)",
				s.where(), len(tables), markerTable, sinks.ErrNotReplica)
		}
		_, err := s.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+mysqlsrc.QuoteIdent(s.cfg.DBName)+"."+markerTable+
			" (pipeline varchar(255) NOT NULL PRIMARY KEY, created_at datetime(6) NOT NULL) DEFAULT CHARSET=utf8mb4")
		if err != nil {
			return fmt.Errorf("mysql target %s: mark as replica: %w", s.where(), err)
		}
		_, err = s.db.ExecContext(ctx, "INSERT IGNORE INTO "+mysqlsrc.QuoteIdent(s.cfg.DBName)+"."+markerTable+" VALUES (?, ?)",
			s.opts.Pipeline, time.Now().UTC().Format("2006-01-02 15:04:05.999999"))
		if err != nil {
			return fmt.Errorf("mysql target %s: mark as replica: %w", s.where(), err)
		}
	}
	s.mu.Lock()
	s.marked = true
	s.mu.Unlock()
	return nil
}

// refuseSource refuses a target that is the source database: the same address and
// database, or (when the source answers) the same server identity and database.
func (s *Sink) refuseSource(ctx context.Context) error {
	if s.opts.SourceURL == "" {
		return nil
	}
	u, err := url.Parse(s.opts.SourceURL)
	if err != nil || (u.Scheme != "mysql" && u.Scheme != "mariadb") {
		return nil
	}
	src, err := mysqlsrc.ParseURL(s.opts.SourceURL)
	if err != nil {
		return nil
	}
	refuse := fmt.Errorf("mysql target %s is the pipeline's source database: %w", s.where(), sinks.ErrNotReplica)
	if src.DBName != s.cfg.DBName {
		return nil
	}
	if src.Addr == s.cfg.Addr {
		return refuse
	}
	src.Timeout = 3 * time.Second
	conn, err := driver.NewConnector(src)
	if err != nil {
		return nil
	}
	sdb := sql.OpenDB(conn)
	defer sdb.Close()
	identity := `SELECT CONCAT(@@hostname, ':', @@port, ':', @@server_id)`
	var a, b string
	if sdb.QueryRowContext(ctx, identity).Scan(&a) != nil || s.db.QueryRowContext(ctx, identity).Scan(&b) != nil {
		return nil // the source is unreachable from here: it cannot be this server
	}
	if a == b {
		return refuse
	}
	return nil
}

// Prepare checks the marker (marking an empty target), creates missing tables and
// adds missing columns. Columns the target has beyond the source's are left alone.
func (s *Sink) Prepare(ctx context.Context, tables []cdc.Table) error {
	if err := s.checkReplica(ctx, true); err != nil {
		return err
	}
	if err := s.ensureCheckpoints(ctx); err != nil {
		return err
	}
	for _, t := range tables {
		if t.RenamedFrom != "" {
			if err := s.rename(ctx, t); err != nil {
				return fmt.Errorf("mysql target %s: rename %s to %s: %w", s.where(), t.RenamedFrom, t.Name, err)
			}
			continue
		}
		if err := s.prepareTable(ctx, t); err != nil {
			return fmt.Errorf("mysql target %s: prepare %s: %w", s.where(), t.Name, err)
		}
		s.mu.Lock()
		s.tables[t.Name] = t
		s.mu.Unlock()
	}
	return nil
}

// rename follows a source table's rename (t.RenamedFrom → t.Name): RENAME TABLE
// when the target has no table of the new name; when it has one (prepared at
// start-up after the user renamed the table in the config, or kept after a DROP,
// which only clears), the old table's rows replace the new one's and the old
// table is cleared, as a dropped table would be. Columns only one side has are
// left alone (the copy takes the columns both have).
func (s *Sink) rename(ctx context.Context, t cdc.Table) error {
	oldCols, err := s.columns(ctx, t.RenamedFrom)
	if err != nil {
		return err
	}
	newCols, err := s.columns(ctx, t.Name)
	if err != nil {
		return err
	}
	_, oldName := cdc.SplitName(t.RenamedFrom)
	_, newName := cdc.SplitName(t.Name)
	switch {
	case len(oldCols) == 0 || oldName == newName:
		// Nothing to move (or a move across source databases, which map to the
		// same target table).
	case len(newCols) == 0:
		if _, err := s.db.ExecContext(ctx, "RENAME TABLE "+s.targetName(t.RenamedFrom)+" TO "+s.targetName(t.Name)); err != nil {
			return err
		}
	default:
		if err := s.prepareTable(ctx, t); err != nil {
			return err
		}
		if newCols, err = s.columns(ctx, t.Name); err != nil {
			return err
		}
		var common []string
		for _, c := range oldCols {
			if slices.Contains(newCols, c) {
				common = append(common, mysqlsrc.QuoteIdent(c))
			}
		}
		cols := strings.Join(common, ", ")
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			for _, q := range []string{
				"DELETE FROM " + s.targetName(t.Name),
				"INSERT INTO " + s.targetName(t.Name) + " (" + cols + ") SELECT " + cols + " FROM " + s.targetName(t.RenamedFrom),
				"DELETE FROM " + s.targetName(t.RenamedFrom),
			} {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := s.prepareTable(ctx, t); err != nil {
		return err
	}
	t.RenamedFrom = ""
	s.mu.Lock()
	s.tables[t.Name] = t
	s.mu.Unlock()
	return nil
}

// columns lists the target table's columns (none when it does not exist).
func (s *Sink) columns(ctx context.Context, table string) ([]string, error) {
	_, name := cdc.SplitName(table)
	rows, err := s.db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, s.cfg.DBName, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

func (s *Sink) prepareTable(ctx context.Context, t cdc.Table) error {
	_, name := cdc.SplitName(t.Name)
	existing := map[string]bool{}
	rows, err := s.db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, s.cfg.DBName, name)
	if err != nil {
		return err
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return err
		}
		existing[strings.ToLower(c)] = true
	}
	rows.Close()
	if len(existing) == 0 {
		var defs []string
		for _, c := range t.Columns {
			defs = append(defs, columnDef(c, t.IsKey(c.Name)))
		}
		var key []string
		for _, k := range t.Key {
			key = append(key, mysqlsrc.QuoteIdent(k))
		}
		if len(key) > 0 {
			defs = append(defs, "PRIMARY KEY ("+strings.Join(key, ", ")+")")
		}
		_, err := s.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+s.targetName(t.Name)+" (\n  "+strings.Join(defs, ",\n  ")+"\n) DEFAULT CHARSET=utf8mb4")
		return err
	}
	for _, c := range t.Columns {
		if existing[strings.ToLower(c.Name)] {
			continue
		}
		// Added columns are nullable: rows already in the target have no value.
		c.Nullable = true
		if _, err := s.db.ExecContext(ctx, "ALTER TABLE "+s.targetName(t.Name)+" ADD COLUMN "+columnDef(c, false)); err != nil {
			return err
		}
	}
	return nil
}

// columnDef renders one column for CREATE TABLE / ADD COLUMN.
func columnDef(c cdc.Column, key bool) string {
	d := mysqlsrc.QuoteIdent(c.Name) + " " + columnType(c, key)
	if !c.Nullable || key {
		d += " NOT NULL"
	} else {
		d += " NULL"
	}
	return d
}

// mysqlTypes are the data types taken verbatim from a source column's Type.
var mysqlTypes = map[string]bool{
	"tinyint": true, "smallint": true, "mediumint": true, "int": true, "integer": true, "bigint": true,
	"decimal": true, "numeric": true, "float": true, "double": true, "real": true, "bit": true,
	"char": true, "varchar": true, "tinytext": true, "text": true, "mediumtext": true, "longtext": true,
	"binary": true, "varbinary": true, "tinyblob": true, "blob": true, "mediumblob": true, "longblob": true,
	"date": true, "datetime": true, "timestamp": true, "time": true, "year": true,
	"enum": true, "set": true, "json": true, "geometry": true, "inet6": true, "inet4": true, "uuid": true,
}

// columnType is the source's type when it is a MySQL type, else one for its kind
// (key columns get bounded types, since TEXT and BLOB cannot be keys whole).
func columnType(c cdc.Column, key bool) string {
	t := strings.TrimSpace(c.Type)
	data := strings.ToLower(t)
	if i := strings.IndexAny(data, "( "); i >= 0 {
		data = data[:i]
	}
	if mysqlTypes[data] && !(key && (strings.HasSuffix(data, "text") || strings.HasSuffix(data, "blob") || data == "json")) {
		if data == "timestamp" {
			// A timestamp copy must not pick up ON UPDATE CURRENT_TIMESTAMP defaults.
			return "datetime" + strings.TrimPrefix(strings.ToLower(t), "timestamp")
		}
		return t
	}
	switch c.Kind {
	case cdc.KindBool:
		return "tinyint(1)"
	case cdc.KindInt:
		return "bigint"
	case cdc.KindUint:
		return "bigint unsigned"
	case cdc.KindFloat:
		return "double"
	case cdc.KindDecimal:
		return "decimal(65,30)"
	case cdc.KindBytes:
		if key {
			return "varbinary(767)"
		}
		return "longblob"
	case cdc.KindTimestamp:
		return "datetime(6)"
	case cdc.KindDate:
		return "date"
	case cdc.KindTime:
		return "time(6)"
	case cdc.KindJSON:
		if key {
			return "varchar(767)"
		}
		return "json"
	}
	if key {
		return "varchar(767)"
	}
	return "longtext"
}

// Clear removes every row of tables, refusing a target that is not a marked
// replica.
func (s *Sink) Clear(ctx context.Context, tables []string) error {
	if err := s.checkReplica(ctx, false); err != nil {
		return err
	}
	for _, t := range tables {
		_, name := cdc.SplitName(t)
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, s.cfg.DBName, name).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			continue
		}
		if _, err := s.db.ExecContext(ctx, "TRUNCATE TABLE "+s.targetName(t)); err != nil {
			return fmt.Errorf("mysql target %s: clear %s: %w", s.where(), t, err)
		}
	}
	return nil
}

// ReadTable reads table's rows back, decoded like the MySQL source decodes them.
func (s *Sink) ReadTable(ctx context.Context, table cdc.Table, emit func(rows []cdc.Row) error) error {
	types := make([]mysqlsrc.ColumnType, len(table.Columns))
	for i, c := range table.Columns {
		types[i] = mysqlsrc.ParseColumnType(columnType(c, table.IsKey(c.Name)), c.Kind)
	}
	cols := make([]string, len(table.Columns))
	for i, c := range table.Columns {
		cols[i] = mysqlsrc.QuoteIdent(c.Name)
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + s.targetName(table.Name)
	if err := mysqlsrc.ReadRows(ctx, s.db, q, nil, table, types, emit); err != nil {
		return fmt.Errorf("mysql target %s: read %s: %w", s.where(), table.Name, err)
	}
	return nil
}
