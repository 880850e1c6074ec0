// Package mysql is the MySQL/MariaDB source: an initial snapshot read in chunks of
// primary-key ranges, each in its own consistent-snapshot transaction, then the
// binlog from the position captured before the first chunk.
//
// Nothing is created on the production server: MySQL keeps no per-reader state
// (no slot), so Reset has nothing to drop and the binlog's retention
// (binlog_expire_logs_seconds / expire_logs_days) bounds how long a stopped sync
// can stay behind. A checkpoint whose binlog was purged fails with
// cdc.ErrPositionLost.
//
// Prerequisites, checked by Open: log_bin=ON, binlog_format=ROW,
// binlog_row_image=FULL; a user with REPLICATION SLAVE, REPLICATION CLIENT (MariaDB
// 10.5+: BINLOG MONITOR) and SELECT on the selected tables; every table has a
// primary key. GTIDs are used when the server has them (MariaDB always; MySQL with
// gtid_mode=ON), file+position otherwise.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/understudy/understudy/cdc"
)

func init() {
	cdc.Register(New, "mysql", "mariadb")
}

var (
	_ cdc.Source            = (*Source)(nil)
	_ cdc.Resetter          = (*Source)(nil)
	_ cdc.TableReader       = (*Source)(nil)
	_ cdc.PositionFormatter = (*Source)(nil)
	_ cdc.StatusReporter    = (*Source)(nil)
)

// Flavors, as go-mysql names them.
const (
	FlavorMySQL   = "mysql"
	FlavorMariaDB = "mariadb"
)

// Source reads one MySQL or MariaDB database. Create it with New; it connects in
// Open.
type Source struct {
	opts cdc.SourceOptions
	cfg  *driver.Config // connection settings from the URL
	db   *sql.DB

	flavor   string
	serverID uint32

	mu     sync.Mutex
	tables map[string]*tableInfo // by "db.table"

	acked atomic.Pointer[Position]

	// MaxBatch bounds the changes per Batch; larger transactions are split.
	MaxBatch int
	// ChunkRows is the target size of a snapshot chunk.
	ChunkRows int
	// ReplicaServerID is the server id the binlog reader announces; it must differ
	// from every server and replica. Zero derives one from the pipeline name.
	ReplicaServerID uint32
	// Logger receives notices (a DDL the schema history could not parse); nil
	// means slog.Default().
	Logger *slog.Logger

	// How this server's information_schema describes a column, so that a parsed
	// column definition is described alike (ddl.go); set by Open.
	intWidths  bool   // integer types show a display width: int(11)
	utf8Name   string // what CHARACTER SET utf8 is called: utf8mb3, or utf8 on older servers
	tsNullable int8   // explicit_defaults_for_timestamp: 1 ON (a bare timestamp is nullable), -1 OFF, 0 unknown
}

// tableInfo is what the source knows about one selected table at one point of the
// binlog: its cdc description and the decoder types of its columns.
type tableInfo struct {
	Table    cdc.Table         `json:"table"`
	Charsets map[string]string `json:"charsets,omitempty"` // column → charset, when not utf8*
	// Charset is the table's default charset, which a column added by ALTER TABLE
	// without one gets; empty in histories written before DDL was parsed.
	Charset string       `json:"charset,omitempty"`
	types   []ColumnType // for values read over the utf8mb4 connection
	binlog  []ColumnType // for row events: raw bytes in the column's charset
}

func (ti *tableInfo) init() *tableInfo {
	ti.types = make([]ColumnType, len(ti.Table.Columns))
	ti.binlog = make([]ColumnType, len(ti.Table.Columns))
	for i, c := range ti.Table.Columns {
		ct := ParseColumnType(c.Type, c.Kind)
		ti.types[i] = ct
		ct.Charset = ti.Charsets[c.Name]
		ti.binlog[i] = ct
	}
	return ti
}

// New creates a MySQL source for opts; it does not connect (Open does).
func New(ctx context.Context, opts cdc.SourceOptions) (cdc.Source, error) {
	return newSource(opts)
}

func newSource(opts cdc.SourceOptions) (*Source, error) {
	if opts.Pipeline == "" {
		return nil, errors.New("mysql source: pipeline name is empty")
	}
	cfg, err := ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("mysql source URL of pipeline %s: %w", opts.Pipeline, err)
	}
	return &Source{opts: opts, cfg: cfg, tables: map[string]*tableInfo{}, MaxBatch: 5000, ChunkRows: 100_000, Logger: opts.Log}, nil
}

// ParseURL turns "mysql://user:password@host:port/db?param=value" (or a
// go-sql-driver DSN "user:password@tcp(host:port)/db") into a driver config with
// understudy's session settings: utf8mb4, time_zone '+00:00' (datetimes are read as
// UTC), and the binary-protocol friendly defaults. Errors never include the
// password.
func ParseURL(raw string) (*driver.Config, error) {
	var cfg *driver.Config
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, errors.New("the URL does not parse (mysql://user:password@host:port/database)")
		}
		cfg = driver.NewConfig()
		cfg.Net = "tcp"
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "3306")
		}
		cfg.Addr = host
		if u.User != nil {
			cfg.User = u.User.Username()
			cfg.Passwd, _ = u.User.Password()
		}
		cfg.DBName = strings.TrimPrefix(u.Path, "/")
		for k, v := range u.Query() {
			if len(v) > 0 {
				if cfg.Params == nil {
					cfg.Params = map[string]string{}
				}
				cfg.Params[k] = v[0]
			}
		}
	} else {
		var err error
		if cfg, err = driver.ParseDSN(raw); err != nil {
			return nil, errors.New("the DSN does not parse (user:password@tcp(host:port)/database)")
		}
	}
	if cfg.DBName == "" {
		return nil, errors.New("the URL names no database (mysql://user@host:port/database)")
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	cfg.Collation = "utf8mb4_general_ci"
	cfg.Loc = time.UTC
	cfg.Timeout = 10 * time.Second
	cfg.ParseTime = false
	cfg.AllowNativePasswords = true
	cfg.InterpolateParams = false
	return cfg, nil
}

// where names the server for messages: host:port/db, never the password.
func (s *Source) where() string { return s.cfg.Addr + "/" + s.cfg.DBName }

func (s *Source) connect(ctx context.Context) error {
	if s.db != nil {
		return nil
	}
	conn, err := driver.NewConnector(s.cfg)
	if err != nil {
		return fmt.Errorf("mysql source %s: %w", s.where(), err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return fmt.Errorf("mysql source %s: cannot connect: %w", s.where(), err)
	}
	s.db = db
	return nil
}

// qualify returns "db.table" for a configured name; a bare name is in the URL's
// database.
func (s *Source) qualify(name string) string {
	if db, _ := cdc.SplitName(name); db == "" {
		return s.cfg.DBName + "." + name
	}
	return name
}

// flavorOf tells MariaDB from MySQL by SELECT VERSION(): MariaDB always names
// itself ("10.11.6-MariaDB-0+deb12u1-log", or "5.5.5-10.11.6-MariaDB" through the
// replication-protocol prefix some proxies keep); anything else (Percona Server,
// Amazon Aurora MySQL, "8.0.36") speaks MySQL's protocol and GTIDs.
func flavorOf(version string) string {
	if strings.Contains(strings.ToLower(version), "mariadb") {
		return FlavorMariaDB
	}
	return FlavorMySQL
}

// readDialect records how information_schema describes columns on this server.
// Failures leave the defaults, under which parsed DDL falls back to
// information_schema where it would depend on them.
func (s *Source) readDialect(ctx context.Context, version string) {
	s.intWidths = true
	if s.flavor == FlavorMySQL {
		// MySQL 8.0.19 dropped integer display widths from COLUMN_TYPE.
		var major, minor, patch int
		fmt.Sscanf(version, "%d.%d.%d", &major, &minor, &patch)
		s.intWidths = major*10000+minor*100+patch < 80019
	}
	var explicit sql.NullInt64
	var utf8 sql.NullString
	if s.db.QueryRowContext(ctx, `SELECT @@explicit_defaults_for_timestamp, CHARSET(CONVERT('' USING utf8))`).Scan(&explicit, &utf8) != nil {
		return
	}
	s.utf8Name = utf8.String
	switch {
	case explicit.Valid && explicit.Int64 != 0:
		s.tsNullable = 1
	case explicit.Valid:
		s.tsNullable = -1
	}
}

// charsetOf returns the charset of a collation ("latin1_swedish_ci" → latin1),
// named as information_schema names it.
func (s *Source) charsetOf(collation string) string {
	cs, _, _ := strings.Cut(collation, "_")
	return s.charsetName(cs)
}

// charsetName names a charset as information_schema does (utf8 → utf8mb3 on
// MariaDB 10.6+ and MySQL 8.0.30+).
func (s *Source) charsetName(cs string) string {
	cs = strings.ToLower(cs)
	if cs == "utf8" && s.utf8Name != "" {
		return strings.ToLower(s.utf8Name)
	}
	return cs
}

// logger returns the Logger to use.
func (s *Source) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// selected reports whether "db.table" is one of the configured tables.
func (s *Source) selected(name string) bool {
	for _, configured := range s.opts.Tables {
		if s.qualify(configured) == name {
			return true
		}
	}
	return false
}

// Open connects, checks every prerequisite (collecting all problems, one line each)
// and returns each table's schema, named "db.table".
func (s *Source) Open(ctx context.Context) ([]cdc.Table, error) {
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	var problems []string
	var version, logBin, format, image string
	var serverID uint32
	err := s.db.QueryRowContext(ctx, `SELECT VERSION(), @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id`).
		Scan(&version, &logBin, &format, &image, &serverID)
	if err != nil {
		return nil, fmt.Errorf("mysql source %s: %w", s.where(), err)
	}
	s.flavor = flavorOf(version)
	s.serverID = serverID
	s.readDialect(ctx, version)
	if logBin != "1" && !strings.EqualFold(logBin, "ON") {
		problems = append(problems, "the binary log is off: start the server with --log-bin (and --server-id)")
	}
	if !strings.EqualFold(format, "ROW") {
		problems = append(problems, fmt.Sprintf("binlog_format is %s, not ROW: SET GLOBAL binlog_format = 'ROW' (and in the server config)", format))
	}
	if !strings.EqualFold(image, "FULL") {
		problems = append(problems, fmt.Sprintf("binlog_row_image is %s, not FULL: SET GLOBAL binlog_row_image = 'FULL' (and in the server config)", image))
	}
	problems = append(problems, s.checkGrants(ctx)...)

	var tables []cdc.Table
	infos := map[string]*tableInfo{}
	for _, configured := range s.opts.Tables {
		name := s.qualify(configured)
		info, problem, err := s.describe(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("mysql source %s: describe %s: %w", s.where(), name, err)
		}
		if problem != "" {
			problems = append(problems, problem)
			continue
		}
		infos[name] = info
		tables = append(tables, info.Table)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("mysql source %s (pipeline %s) is not ready:\n  %s", s.where(), s.opts.Pipeline, strings.Join(problems, "\n  "))
	}
	s.mu.Lock()
	s.tables = infos
	s.mu.Unlock()
	return tables, nil
}

// checkGrants reads SHOW GRANTS for the current user. Grants through roles are not
// expanded: when the user has roles, the check is left to the server's errors.
func (s *Source) checkGrants(ctx context.Context) []string {
	rows, err := s.db.QueryContext(ctx, "SHOW GRANTS")
	if err != nil {
		return nil
	}
	defer rows.Close()
	var repl, client, sel, roles bool
	db := strings.ToLower(s.cfg.DBName)
	for rows.Next() {
		var g string
		if rows.Scan(&g) != nil {
			return nil
		}
		up := strings.ToUpper(g)
		if !strings.HasPrefix(up, "GRANT ") {
			continue
		}
		on := strings.Index(up, " ON ")
		if on < 0 {
			roles = true // "GRANT role TO user"
			continue
		}
		privs := up[len("GRANT "):on]
		target := strings.ToLower(strings.ReplaceAll(strings.Fields(g[on+4:])[0], "`", ""))
		all := strings.Contains(privs, "ALL PRIVILEGES")
		global := target == "*.*"
		if global && (all || strings.Contains(privs, "REPLICATION SLAVE")) {
			repl = true
		}
		if global && (all || strings.Contains(privs, "REPLICATION CLIENT") || strings.Contains(privs, "BINLOG MONITOR") || strings.Contains(privs, "SUPER")) {
			client = true
		}
		if (global || target == db+".*" || strings.HasPrefix(target, db+".")) && (all || strings.Contains(privs, "SELECT")) {
			sel = true
		}
	}
	if roles {
		return nil
	}
	user := s.cfg.User
	var problems []string
	if !repl {
		problems = append(problems, fmt.Sprintf("user %s lacks REPLICATION SLAVE: GRANT REPLICATION SLAVE ON *.* TO '%s'@'%%'", user, user))
	}
	if !client {
		problems = append(problems, fmt.Sprintf("user %s lacks REPLICATION CLIENT (MariaDB 10.5+: BINLOG MONITOR): GRANT REPLICATION CLIENT ON *.* TO '%s'@'%%'", user, user))
	}
	if !sel {
		problems = append(problems, fmt.Sprintf("user %s lacks SELECT on %s: GRANT SELECT ON `%s`.* TO '%s'@'%%'", user, s.cfg.DBName, s.cfg.DBName, user))
	}
	return problems
}

// describe reads a table's columns and primary key from information_schema. It
// returns a problem line for a missing table or a table without primary key.
func (s *Source) describe(ctx context.Context, name string) (*tableInfo, string, error) {
	schema, table := cdc.SplitName(name)
	rows, err := s.db.QueryContext(ctx, `
		SELECT COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE, COALESCE(CHARACTER_SET_NAME, '')
		FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?
		ORDER BY ORDINAL_POSITION`, schema, table)
	if err != nil {
		return nil, "", err
	}
	info := &tableInfo{Table: cdc.Table{Name: name}}
	for rows.Next() {
		var col, colType, dataType, nullable, charset string
		if err := rows.Scan(&col, &colType, &dataType, &nullable, &charset); err != nil {
			rows.Close()
			return nil, "", err
		}
		info.Table.Columns = append(info.Table.Columns, info.column(col, colType, nullable == "YES", charset))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	if len(info.Table.Columns) == 0 {
		return nil, fmt.Sprintf("table %s does not exist (or user %s cannot see it)", name, s.cfg.User), nil
	}
	if err := s.markJSON(ctx, info, schema, table); err != nil {
		return nil, "", err
	}
	var collation sql.NullString
	err = s.db.QueryRowContext(ctx, `SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?`, schema, table).Scan(&collation)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, "", err
	}
	info.Charset = s.charsetOf(collation.String)
	krows, err := s.db.QueryContext(ctx, `
		SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_NAME = 'PRIMARY'
		ORDER BY ORDINAL_POSITION`, schema, table)
	if err != nil {
		return nil, "", err
	}
	for krows.Next() {
		var k string
		if err := krows.Scan(&k); err != nil {
			krows.Close()
			return nil, "", err
		}
		info.Table.Key = append(info.Table.Key, k)
	}
	krows.Close()
	if len(info.Table.Key) == 0 {
		return nil, noKeyProblem(name), nil
	}
	return info.init(), "", nil
}

// noKeyProblem is the problem line of a selected table without a primary key.
func noKeyProblem(name string) string {
	return fmt.Sprintf("table %s has no primary key, which understudy needs to apply updates and deletes by key: ALTER TABLE %s ADD PRIMARY KEY (…)",
		name, quoteName(name))
}

// column describes one column from what information_schema.COLUMNS says of it
// (COLUMN_TYPE, IS_NULLABLE, CHARACTER_SET_NAME). The DDL parser renders a column
// definition into the same three (ddl.go), so both paths describe a column alike.
func (ti *tableInfo) column(name, colType string, nullable bool, charset string) cdc.Column {
	ct := ParseColumnType(colType, cdc.KindUnknown)
	c := cdc.Column{Name: name, Type: colType, Kind: ct.Kind, Nullable: nullable, Enum: ct.Labels}
	if charset != "" && !strings.HasPrefix(charset, "utf8mb4") {
		// COLUMN_TYPE omits the charset; a MySQL target created from Type would
		// otherwise store a latin1 (or ascii, utf8mb3) column as utf8mb4, and a
		// replica must hold what production can hold, no more.
		c.Type = colType + " CHARACTER SET " + charset
	}
	if ct.Data == "set" {
		c.Enum = nil
	}
	if strings.HasPrefix(charset, "latin1") {
		if ti.Charsets == nil {
			ti.Charsets = map[string]string{}
		}
		ti.Charsets[name] = "latin1"
	}
	return c
}

// markJSON finds MariaDB's JSON columns: JSON is an alias of LONGTEXT there, told
// apart by the json_valid() check constraint the server adds.
func (s *Source) markJSON(ctx context.Context, info *tableInfo, schema, table string) error {
	if s.flavor != FlavorMariaDB {
		return nil
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
		WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`, schema, table)
	if err != nil {
		return nil // older servers have no CHECK_CONSTRAINTS: JSON stays text
	}
	defer rows.Close()
	for rows.Next() {
		var clause string
		if err := rows.Scan(&clause); err != nil {
			return err
		}
		col, ok := strings.CutPrefix(clause, "json_valid(`")
		if !ok {
			continue
		}
		col = strings.TrimSuffix(col, "`)")
		for i := range info.Table.Columns {
			c := &info.Table.Columns[i]
			if c.Name == col && strings.HasSuffix(strings.ToLower(c.Type), "text") {
				c.Type, c.Kind = "json", cdc.KindJSON
			}
		}
	}
	return rows.Err()
}

func (s *Source) table(name string) (*tableInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tables[name]
	return t, ok
}

// QuoteIdent quotes a MySQL identifier with backticks.
func QuoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// quoteName quotes "db.table" as `db`.`table`.
func quoteName(name string) string {
	db, t := cdc.SplitName(name)
	if db == "" {
		return QuoteIdent(t)
	}
	return QuoteIdent(db) + "." + QuoteIdent(t)
}

// Reset has nothing to drop: MySQL keeps no replication state for a binlog reader.
func (s *Source) Reset(ctx context.Context) error { return nil }

// Ack records pos as checkpointed. The binlog has no reader acknowledgement: the
// server keeps binlogs by its own retention, so this only feeds status.
func (s *Source) Ack(ctx context.Context, pos cdc.Position) error {
	p, err := ParsePosition(pos)
	if err != nil {
		return err
	}
	s.acked.Store(&p)
	return nil
}

// Close releases connections.
func (s *Source) Close() error {
	if s.db != nil {
		err := s.db.Close()
		s.db = nil
		return err
	}
	return nil
}

// replicaServerID is the server id the binlog reader uses: configured, or derived
// from the pipeline name in a range real servers rarely use.
func (s *Source) replicaServerID() uint32 {
	if s.ReplicaServerID != 0 {
		return s.ReplicaServerID
	}
	var h uint32 = 2166136261
	for i := 0; i < len(s.opts.Pipeline); i++ {
		h = (h ^ uint32(s.opts.Pipeline[i])) * 16777619
	}
	id := 1_000_000_000 + h%1_000_000_000
	if id == s.serverID {
		id++
	}
	return id
}

func hostPort(addr string) (string, uint16, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	return h, uint16(n), nil
}
