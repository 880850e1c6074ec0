// Package postgres is the Postgres source: an initial snapshot read from a logical
// replication slot's exported snapshot, then the slot's pgoutput stream.
//
// Replication state on the production server, both named after the pipeline:
// the publication understudy_<pipeline> (the selected tables) and the logical
// slot understudy_<pipeline>. Close keeps them; Reset drops them.
//
// Prerequisites, checked by Open: wal_level=logical; a role with REPLICATION (or
// superuser) and SELECT on every selected table; every table has a primary key
// (or a unique index over NOT NULL columns that is its REPLICA IDENTITY), because
// the sink upserts and deletes by key.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/understudy/understudy/cdc"
)

func init() {
	cdc.Register(New, "postgres", "postgresql")
}

var (
	_ cdc.Source   = (*Source)(nil)
	_ cdc.Resetter = (*Source)(nil)
)

// Source reads one Postgres database. Create it with New; it connects in Open.
type Source struct {
	opts cdc.SourceOptions
	name string // slot and publication name

	pool  *pgxpool.Pool
	types *typeCache
	db    string // database name, for messages

	mu     sync.Mutex
	tables map[string]*tableInfo // by "schema.table"

	// acked is the highest LSN the pipeline acknowledged (checkpointed); the only
	// LSN the stream ever reports to the server as flushed (besides the idle
	// heartbeat, see stream.go).
	acked atomic.Uint64

	// MaxBatch bounds the changes per Batch; larger transactions are split.
	MaxBatch int
	// StatusInterval is how often the stream reports its flush position.
	StatusInterval time.Duration
}

// tableInfo is what Open learned about one selected table.
type tableInfo struct {
	table cdc.Table
	oid   uint32
	types []*pgType // per table.Columns entry
}

// New creates a Postgres source for opts; it does not connect (Open does).
func New(ctx context.Context, opts cdc.SourceOptions) (cdc.Source, error) {
	return newSource(opts)
}

func newSource(opts cdc.SourceOptions) (*Source, error) {
	if opts.Pipeline == "" {
		return nil, errors.New("postgres source: pipeline name is empty")
	}
	if _, err := pgx.ParseConfig(opts.URL); err != nil {
		return nil, fmt.Errorf("postgres source URL of pipeline %s does not parse: %w", opts.Pipeline, redact(err))
	}
	return &Source{
		opts:           opts,
		name:           ReplicationName(opts.Pipeline),
		tables:         map[string]*tableInfo{},
		MaxBatch:       5000,
		StatusInterval: 10 * time.Second,
	}, nil
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

// ReplicationName is the slot and publication name of a pipeline:
// "understudy_" + the pipeline name lowercased, other characters replaced by "_"
// (slot names allow only [a-z0-9_]), at most 63 bytes.
func ReplicationName(pipeline string) string {
	n := "understudy_" + nonIdent.ReplaceAllString(strings.ToLower(pipeline), "_")
	if len(n) > 63 {
		n = n[:63]
	}
	return n
}

// redact drops anything that could hold the URL's password from a config error.
func redact(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("invalid connection string")
	}
	return err
}

// connConfig is the regular-connection config with understudy's session settings.
func (s *Source) poolConfig() (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(s.opts.URL)
	if err != nil {
		return nil, redact(err)
	}
	for k, v := range sessionParams {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	// The source only reads; make the server enforce it.
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	return cfg, nil
}

// replConfig is the config of a replication=database connection.
func (s *Source) replConfig() (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(s.opts.URL)
	if err != nil {
		return nil, redact(err)
	}
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	cfg.RuntimeParams["replication"] = "database"
	return cfg, nil
}

func (s *Source) connectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := s.replConfig()
	if err != nil {
		return nil, err
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres source %s:%d/%s: replication connection failed: %w", cfg.Host, cfg.Port, cfg.Database, err)
	}
	return conn, nil
}

// Open connects, checks every prerequisite (collecting all problems, one line
// each), creates or updates the publication understudy_<pipeline> to hold exactly
// the selected tables, and returns each table's schema. Table names are always
// "schema.table"; a configured name without a schema means "public".
func (s *Source) Open(ctx context.Context) ([]cdc.Table, error) {
	where, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	pool := s.pool

	var problems []string
	var walLevel, user string
	var canReplicate bool
	err = pool.QueryRow(ctx, `SELECT current_setting('wal_level'), current_user,
		(SELECT rolreplication OR rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)`).
		Scan(&walLevel, &user, &canReplicate)
	if err != nil {
		return nil, fmt.Errorf("postgres source %s: %w", where, err)
	}
	if p := checkWalLevel(walLevel); p != "" {
		problems = append(problems, p)
	}
	if !canReplicate {
		problems = append(problems, fmt.Sprintf("role %s lacks the REPLICATION attribute: run ALTER ROLE %s WITH REPLICATION",
			user, pgx.Identifier{user}.Sanitize()))
	}

	var tables []cdc.Table
	infos := map[string]*tableInfo{}
	for _, name := range s.opts.Tables {
		info, tableProblems, err := s.describe(ctx, name, user)
		if err != nil {
			return nil, fmt.Errorf("postgres source %s: describe %s: %w", where, name, err)
		}
		problems = append(problems, tableProblems...)
		if info != nil {
			infos[info.table.Name] = info
			tables = append(tables, info.table)
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("postgres source %s (pipeline %s) is not ready:\n  %s", where, s.opts.Pipeline, strings.Join(problems, "\n  "))
	}
	s.mu.Lock()
	s.tables = infos
	s.mu.Unlock()
	// The publication must exist before the slot is created: pgoutput looks it up
	// with the catalog as of each decoded change.
	if err := s.ensurePublication(ctx, tables); err != nil {
		return nil, fmt.Errorf("postgres source %s: %w", where, err)
	}
	return tables, nil
}

// checkWalLevel returns the problem line for a wal_level other than logical.
func checkWalLevel(level string) string {
	if level == "logical" {
		return ""
	}
	return fmt.Sprintf("wal_level is %q, logical replication needs \"logical\": set wal_level=logical in postgresql.conf and restart Postgres", level)
}

// describe reads one table's columns and key. It returns nil info and problem
// lines when the table cannot be used.
func (s *Source) describe(ctx context.Context, configured, user string) (*tableInfo, []string, error) {
	schema, rel := cdc.SplitName(configured)
	if schema == "" {
		schema = "public"
	}
	name := schema + "." + rel
	quoted := pgx.Identifier{schema, rel}.Sanitize()

	var (
		oid       uint32
		canSelect bool
		replIdent string
	)
	err := s.pool.QueryRow(ctx, `
		SELECT c.oid, has_table_privilege(c.oid, 'SELECT'), c.relreplident::text
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, schema, rel).
		Scan(&oid, &canSelect, &replIdent)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, []string{fmt.Sprintf("table %s does not exist in database %s", name, s.db)}, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var problems []string
	if !canSelect {
		problems = append(problems, fmt.Sprintf("role %s cannot read table %s: run GRANT SELECT ON %s TO %s",
			user, name, quoted, pgx.Identifier{user}.Sanitize()))
	}

	info := &tableInfo{oid: oid, table: cdc.Table{Name: name}}
	// With search_path = pg_catalog, format_type qualifies every type that is not
	// built in ("public.mood"), so a sink can create it in the right schema.
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL search_path = pg_catalog"); err != nil {
		return nil, nil, err
	}
	rows, err := tx.Query(ctx, `
		SELECT a.attname::text, a.atttypid, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
		ORDER BY a.attnum`, oid)
	if err != nil {
		return nil, nil, err
	}
	type col struct {
		name, typ string
		oid       uint32
		nullable  bool
	}
	var cols []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.name, &c.oid, &c.typ, &c.nullable); err != nil {
			return nil, nil, err
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	for _, c := range cols {
		t, err := s.types.resolve(ctx, c.oid)
		if err != nil {
			return nil, nil, err
		}
		info.table.Columns = append(info.table.Columns, cdc.Column{
			Name: c.name, Type: c.typ, Kind: t.Kind, Nullable: c.nullable, Enum: t.Enum,
		})
		info.types = append(info.types, t)
	}

	key, keyProblem, err := s.tableKey(ctx, tx, oid, name, quoted, replIdent)
	if err != nil {
		return nil, nil, err
	}
	if keyProblem != "" {
		problems = append(problems, keyProblem)
	}
	if len(problems) > 0 {
		return nil, problems, nil
	}
	info.table.Key = key
	return info, nil, nil
}

// tableKey finds the key the sink will upsert and delete by: the primary key, or
// else a unique index over NOT NULL columns that is the table's REPLICA IDENTITY
// (so deletes carry it). REPLICA IDENTITY FULL alone is not enough: without a key
// the target cannot find the row an update or delete names.
func (s *Source) tableKey(ctx context.Context, tx pgx.Tx, oid uint32, name, quoted, replIdent string) ([]string, string, error) {
	rows, err := tx.Query(ctx, `
		SELECT i.indexrelid::regclass::text, i.indisprimary, i.indisreplident,
		       array(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
		             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		             ORDER BY k.ord),
		       bool_and(a2.attnotnull)
		FROM pg_catalog.pg_index i
		JOIN pg_catalog.pg_attribute a2 ON a2.attrelid = i.indrelid AND a2.attnum = ANY(i.indkey)
		WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
		  AND NOT (0 = ANY(i.indkey::int2[]))
		GROUP BY i.indexrelid, i.indisprimary, i.indisreplident, i.indkey, i.indrelid
		ORDER BY i.indisprimary DESC, i.indisreplident DESC, i.indexrelid`, oid)
	if err != nil {
		return nil, "", err
	}
	type index struct {
		name            string
		primary, replid bool
		cols            []string
		notNull         bool
	}
	var idx []index
	for rows.Next() {
		var x index
		if err := rows.Scan(&x.name, &x.primary, &x.replid, &x.cols, &x.notNull); err != nil {
			return nil, "", err
		}
		idx = append(idx, x)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	for _, x := range idx {
		if x.primary {
			if replIdent == "n" {
				return nil, fmt.Sprintf("table %s has REPLICA IDENTITY NOTHING, so deletes carry no key: run ALTER TABLE %s REPLICA IDENTITY DEFAULT", name, quoted), nil
			}
			return x.cols, "", nil
		}
	}
	for _, x := range idx {
		if !x.notNull {
			continue
		}
		if x.replid || replIdent == "f" {
			return x.cols, "", nil
		}
		return nil, fmt.Sprintf("table %s has no primary key; its unique index %s could serve as key: run ALTER TABLE %s REPLICA IDENTITY USING INDEX %s (or add a primary key)",
			name, x.name, quoted, x.name), nil
	}
	if replIdent == "f" {
		return nil, fmt.Sprintf("table %s has REPLICA IDENTITY FULL but no primary key or unique NOT NULL index, and understudy needs a key to upsert and delete by: add a primary key (ALTER TABLE %s ADD PRIMARY KEY (…))", name, quoted), nil
	}
	return nil, fmt.Sprintf("table %s has no primary key: add one (ALTER TABLE %s ADD PRIMARY KEY (…)); REPLICA IDENTITY FULL alone is not enough, understudy needs a key to upsert and delete by", name, quoted), nil
}

// ensurePublication creates the pipeline's publication for the selected tables,
// or changes an existing one to hold exactly them.
func (s *Source) ensurePublication(ctx context.Context, tables []cdc.Table) error {
	var list []string
	for _, t := range tables {
		schema, rel := cdc.SplitName(t.Name)
		list = append(list, pgx.Identifier{schema, rel}.Sanitize())
	}
	pub := pgx.Identifier{s.name}.Sanitize()
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1)`, s.name).Scan(&exists); err != nil {
		return err
	}
	var stmt string
	if !exists {
		stmt = "CREATE PUBLICATION " + pub + " FOR TABLE " + strings.Join(list, ", ")
	} else {
		// Compare first: ALTER PUBLICATION needs ownership, which a restart of an
		// unchanged pipeline should not.
		rows, err := s.pool.Query(ctx, `SELECT schemaname::text || '.' || tablename::text FROM pg_catalog.pg_publication_tables WHERE pubname = $1`, s.name)
		if err != nil {
			return err
		}
		current, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if sameSet(current, tableNames(tables)) {
			return nil
		}
		stmt = "ALTER PUBLICATION " + pub + " SET TABLE " + strings.Join(list, ", ")
	}
	if len(list) == 0 {
		return errors.New("no tables selected")
	}
	if err := s.writeReplicationState(ctx, stmt); err != nil {
		return fmt.Errorf("create publication %s: %w (the role needs CREATE on the database and ownership of the tables, or superuser)", s.name, err)
	}
	return nil
}

// writeReplicationState runs a DDL statement for replication state on a
// connection that is not read-only (the pool's sessions are).
func (s *Source) writeReplicationState(ctx context.Context, stmt string, args ...any) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadWrite})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, stmt, args...); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

func tableNames(ts []cdc.Table) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Name)
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

// slotState reports whether the pipeline's slot exists and still holds its WAL.
func (s *Source) slotState(ctx context.Context) (exists bool, lost bool, err error) {
	var walStatus *string
	err = s.pool.QueryRow(ctx, `SELECT wal_status FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, s.name).Scan(&walStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return true, walStatus != nil && *walStatus == "lost", nil
}

// Ack records pos as durably checkpointed; the stream reports it to the server as
// flushed at its next status update, letting the server release older WAL. Ack
// never moves the position backwards.
func (s *Source) Ack(ctx context.Context, pos cdc.Position) error {
	lsn, err := ParsePosition(pos)
	if err != nil {
		return err
	}
	for {
		cur := s.acked.Load()
		if uint64(lsn) <= cur || s.acked.CompareAndSwap(cur, uint64(lsn)) {
			return nil
		}
	}
}

// connect opens the connection pool without checking prerequisites; it returns
// host:port/db for messages (never the password).
func (s *Source) connect(ctx context.Context) (where string, err error) {
	cfg, err := s.poolConfig()
	if err != nil {
		return "", fmt.Errorf("postgres source of pipeline %s: %w", s.opts.Pipeline, err)
	}
	cc := cfg.ConnConfig
	where = fmt.Sprintf("%s:%d/%s", cc.Host, cc.Port, cc.Database)
	s.db = cc.Database
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return "", fmt.Errorf("postgres source %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return "", fmt.Errorf("postgres source %s is unreachable: %w", where, err)
	}
	s.pool = pool
	s.types = newTypeCache(pool)
	return where, nil
}

// Close releases the connections. The slot and publication stay (see Reset).
func (s *Source) Close() error {
	if s.pool != nil {
		s.pool.Close()
	}
	return nil
}

// Reset drops the pipeline's slot (ending a walsender still streaming from it)
// and its publication, so that the next load starts clean. It does not need Open:
// a reset must work even when a selected table no longer passes Open's checks.
func (s *Source) Reset(ctx context.Context) error {
	if s.pool == nil {
		if _, err := s.connect(ctx); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var activePID *int32
		err := s.pool.QueryRow(ctx, `SELECT active_pid FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, s.name).Scan(&activePID)
		if errors.Is(err, pgx.ErrNoRows) {
			break
		}
		if err != nil {
			return fmt.Errorf("reset: %w", err)
		}
		if activePID != nil {
			// pg_terminate_backend is asynchronous; loop until the slot is free.
			if _, err := s.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, *activePID); err != nil {
				return fmt.Errorf("reset: end the walsender of slot %s: %w", s.name, err)
			}
		} else {
			err := s.writeReplicationState(ctx, `SELECT pg_drop_replication_slot($1)`, s.name)
			if err == nil {
				break
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "55006" { // object_in_use: it became active again
				return fmt.Errorf("reset: drop slot %s: %w", s.name, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("reset: slot %s stays in use; stop the understudy sync that streams from it", s.name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := s.writeReplicationState(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{s.name}.Sanitize()); err != nil {
		return fmt.Errorf("reset: drop publication %s: %w", s.name, err)
	}
	return nil
}

// table returns what Open learned about a table, by name.
func (s *Source) table(name string) (*tableInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tables[name]
	return t, ok
}
