// Package postgres is the Postgres target: a marked replica database that
// receives snapshot rows by COPY and stream changes as batched upserts and
// deletes, with the pipeline's checkpoint optionally in the same transaction.
//
// Replica marker: the schema "understudy" holds understudy.replica (one row per
// pipeline writing here) and understudy.checkpoints. Prepare creates the marker
// only in a database without user tables, and refuses a database that is the
// source, or that has tables but no marker.
//
// Schema rules (Prepare):
//   - a table missing in the target is created from the source's description:
//     columns with their source types, NOT NULL, the primary key; enum types are
//     created first. Unique indexes other than the key are NOT created: replaying
//     the stream over the snapshot transiently violates them (a value moves from
//     one row to another), which would stop the pipeline.
//   - a column the source has and the target lacks is added (nullable, since
//     existing rows have no value for it).
//   - a column only the target has is left alone (the release under test may
//     have migrated its schema); writes never name it, so it keeps its default.
//   - a label missing from a target enum is added.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/understudy/understudy/cdc"
	pgsource "github.com/understudy/understudy/cdc/postgres"
	"github.com/understudy/understudy/sinks"
)

func init() {
	sinks.Register(Open, "postgres", "postgresql")
}

var (
	_ sinks.Sink                      = (*Sink)(nil)
	_ sinks.TransactionalCheckpointer = (*Sink)(nil)
)

// sessionParams make value input (and, for ReadTable, output) independent of
// the role's or server's defaults: the same settings as the source's.
var sessionParams = pgsource.SessionParams()

// Sink writes to one Postgres database.
type Sink struct {
	opts  sinks.Options
	pool  *pgxpool.Pool
	where string // host:port/db for messages

	mu     sync.Mutex
	tables map[string]cdc.Table // as last Prepared

	decoder *pgsource.Decoder // for ReadTable
}

// Open connects to the target; it writes nothing (Prepare checks the marker first).
func Open(ctx context.Context, opts sinks.Options) (sinks.Sink, error) {
	return open(ctx, opts)
}

func open(ctx context.Context, opts sinks.Options) (*Sink, error) {
	cfg, err := pgxpool.ParseConfig(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres target URL of pipeline %s: %w", opts.Pipeline, redact(err))
	}
	for k, v := range sessionParams {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	cc := cfg.ConnConfig
	where := fmt.Sprintf("%s:%d/%s", cc.Host, cc.Port, cc.Database)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres target %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres target %s is unreachable: %w", where, err)
	}
	return &Sink{opts: opts, pool: pool, where: where, tables: map[string]cdc.Table{}, decoder: pgsource.NewDecoder(pool)}, nil
}

func redact(err error) error {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		return errors.New("invalid connection string")
	}
	return err
}

// Close releases the connections.
func (s *Sink) Close() error {
	s.pool.Close()
	return nil
}

// dbIdentity is what makes two connections the same database.
type dbIdentity struct {
	system string // pg_control_system().system_identifier, "" when not readable
	db     string
	addr   string // host:port
}

func identify(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, addr string) (dbIdentity, error) {
	id := dbIdentity{addr: addr}
	if err := q.QueryRow(ctx, "SELECT current_database()").Scan(&id.db); err != nil {
		return id, err
	}
	// pg_control_system needs superuser or pg_read_server_files-like grants on
	// some setups; without it we fall back to comparing addresses.
	var sys int64
	if err := q.QueryRow(ctx, "SELECT system_identifier FROM pg_control_system()").Scan(&sys); err == nil {
		id.system = fmt.Sprint(sys)
	}
	return id, nil
}

// checkNotSource refuses a target that is the pipeline's source database: same
// cluster (system identifier) and same database name, or, when the identifier is
// unreadable, same host:port and database.
func (s *Sink) checkNotSource(ctx context.Context) error {
	if s.opts.SourceURL == "" {
		return nil
	}
	target, err := identify(ctx, s.pool, "")
	if err != nil {
		return fmt.Errorf("postgres target %s: %w", s.where, err)
	}
	cfg, err := pgx.ParseConfig(s.opts.SourceURL)
	if err != nil {
		return nil // not a Postgres URL: a different kind of store cannot be this database
	}
	cfg.RuntimeParams["default_transaction_read_only"] = "on"
	srcAddr := fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	tcfg := s.pool.Config().ConnConfig
	targetAddr := fmt.Sprintf("%s:%d", tcfg.Host, tcfg.Port)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		// Cannot ask the source: compare what the URLs say.
		if srcAddr == targetAddr && cfg.Database == tcfg.Database {
			return fmt.Errorf("postgres target %s is the pipeline's source database: %w", s.where, sinks.ErrNotReplica)
		}
		return nil
	}
	defer conn.Close(context.Background())
	source, err := identify(ctx, conn, srcAddr)
	if err != nil {
		return fmt.Errorf("postgres target %s: identify the source: %w", s.where, err)
	}
	same := source.db == target.db
	if source.system != "" && target.system != "" {
		same = same && source.system == target.system
	} else {
		same = same && srcAddr == targetAddr
	}
	if same {
		return fmt.Errorf("postgres target %s is the pipeline's source database (same server and database): %w", s.where, sinks.ErrNotReplica)
	}
	return nil
}

// checkReplica verifies that the target is a marked replica and not the source.
// With mark set, it marks a database that has no user tables.
func (s *Sink) checkReplica(ctx context.Context, mark bool) error {
	if err := s.checkNotSource(ctx); err != nil {
		return err
	}
	var marked bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass('understudy.replica') IS NOT NULL").Scan(&marked); err != nil {
		return fmt.Errorf("postgres target %s: %w", s.where, err)
	}
	if marked {
		if !mark {
			return nil
		}
		_, err := s.pool.Exec(ctx, `INSERT INTO understudy.replica (pipeline, source_system_identifier, source_db)
			VALUES ($1, $2, $3) ON CONFLICT (pipeline) DO NOTHING`, s.opts.Pipeline, "", sourceDB(s.opts.SourceURL))
		if err != nil {
			return fmt.Errorf("postgres target %s: record pipeline in replica marker: %w", s.where, err)
		}
		return nil
	}
	if !mark {
		return fmt.Errorf("postgres target %s has no understudy replica marker (understudy.replica), refusing to write: %w", s.where, sinks.ErrNotReplica)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT n.nspname::text || '.' || c.relname::text
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'understudy')
		  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
		ORDER BY 1 LIMIT 3`)
	if err != nil {
		return fmt.Errorf("postgres target %s: %w", s.where, err)
	}
	userTables, err := pgx.CollectRows(rows, pgx.RowTo[string]) // closes rows on every path
	if err != nil {
		return fmt.Errorf("postgres target %s: %w", s.where, err)
	}
	if len(userTables) > 0 {
		return fmt.Errorf("postgres target %s has tables (%s…) but no understudy replica marker; point the pipeline at an empty database, which understudy marks as its replica: %w",
			s.where, strings.Join(userTables, ", "), sinks.ErrNotReplica)
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		for _, q := range []string{
			"CREATE SCHEMA IF NOT EXISTS understudy",
			`CREATE TABLE IF NOT EXISTS understudy.replica (
				pipeline text PRIMARY KEY,
				source_system_identifier text NOT NULL DEFAULT '',
				source_db text NOT NULL DEFAULT '',
				created_at timestamptz NOT NULL DEFAULT now())`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("postgres target %s: create replica marker: %w", s.where, err)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO understudy.replica (pipeline, source_db) VALUES ($1, $2)
			ON CONFLICT (pipeline) DO NOTHING`, s.opts.Pipeline, sourceDB(s.opts.SourceURL))
		return err
	})
}

// sourceDB names the source for the marker without credentials.
func sourceDB(url string) string {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
}

func (s *Sink) inTx(ctx context.Context, f func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	if err := f(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Prepare checks and, for an empty database, creates the replica marker before
// anything else; then creates missing enum types, tables and columns (see the
// package comment for the rules). It may be called again with a table's new
// description when the source's schema changes.
func (s *Sink) Prepare(ctx context.Context, tables []cdc.Table) error {
	if err := s.checkReplica(ctx, true); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, checkpointsDDL); err != nil {
		return fmt.Errorf("postgres target %s: create understudy.checkpoints: %w", s.where, err)
	}
	for _, t := range tables {
		if err := s.prepareTable(ctx, t); err != nil {
			return fmt.Errorf("postgres target %s: table %s: %w", s.where, t.Name, err)
		}
		s.mu.Lock()
		s.tables[t.Name] = t
		s.mu.Unlock()
	}
	return nil
}

func (s *Sink) prepareTable(ctx context.Context, t cdc.Table) error {
	schema, _ := cdc.SplitName(t.Name)
	if schema == "" {
		schema = "public"
	}
	if _, err := s.pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize()); err != nil {
		return err
	}
	for _, c := range t.Columns {
		if len(c.Enum) > 0 {
			if err := s.ensureEnum(ctx, strings.TrimSuffix(c.Type, "[]"), c.Enum); err != nil {
				return fmt.Errorf("enum type of column %s: %w", c.Name, err)
			}
		}
	}
	rows, err := s.pool.Query(ctx, `
		SELECT a.attname::text FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, qualified(t.Name))
	if err != nil {
		return err
	}
	existing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	if len(existing) == 0 {
		var defs []string
		for _, c := range t.Columns {
			d := pgx.Identifier{c.Name}.Sanitize() + " " + c.Type
			if !c.Nullable {
				d += " NOT NULL"
			}
			defs = append(defs, d)
		}
		if len(t.Key) > 0 {
			defs = append(defs, "PRIMARY KEY ("+identList(t.Key)+")")
		}
		_, err := s.pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+qualified(t.Name)+" (\n  "+strings.Join(defs, ",\n  ")+"\n)")
		return err
	}
	for _, c := range t.Columns {
		if slices.Contains(existing, c.Name) {
			continue
		}
		// Nullable: rows already in the target have no value for it.
		q := "ALTER TABLE " + qualified(t.Name) + " ADD COLUMN IF NOT EXISTS " + pgx.Identifier{c.Name}.Sanitize() + " " + c.Type
		if _, err := s.pool.Exec(ctx, q); err != nil {
			return fmt.Errorf("add column %s: %w", c.Name, err)
		}
	}
	return nil
}

// ensureEnum creates an enum type with the source's labels, or adds labels the
// target's type lacks (ADD VALUE cannot be used in the transaction that adds it,
// so each runs on its own).
func (s *Sink) ensureEnum(ctx context.Context, typ string, labels []string) error {
	var have []string
	var exists bool
	err := s.pool.QueryRow(ctx, `
		SELECT t.oid IS NOT NULL,
		       coalesce((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid), '{}')
		FROM (SELECT to_regtype($1)::oid AS oid) t`, typ).Scan(&exists, &have)
	if err != nil {
		return err
	}
	var quoted []string
	for _, l := range labels {
		quoted = append(quoted, quoteLiteral(l))
	}
	if !exists {
		if schema, _, ok := strings.Cut(typ, "."); ok {
			if _, err := s.pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
				return err
			}
		}
		_, err := s.pool.Exec(ctx, "CREATE TYPE "+typ+" AS ENUM ("+strings.Join(quoted, ", ")+")")
		return err
	}
	for i, l := range labels {
		if !slices.Contains(have, l) {
			if _, err := s.pool.Exec(ctx, "ALTER TYPE "+typ+" ADD VALUE IF NOT EXISTS "+quoted[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// qualified quotes "schema.table" (schema public when absent).
func qualified(name string) string {
	schema, rel := cdc.SplitName(name)
	if schema == "" {
		schema = "public"
	}
	return pgx.Identifier{schema, rel}.Sanitize()
}

func identList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(q, ", ")
}

// Clear empties the given tables of a marked replica (reset).
func (s *Sink) Clear(ctx context.Context, tables []string) error {
	if err := s.checkReplica(ctx, false); err != nil {
		return err
	}
	if len(tables) == 0 {
		return nil
	}
	var names []string
	for _, t := range tables {
		var exists bool
		if err := s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", qualified(t)).Scan(&exists); err != nil {
			return err
		}
		if exists {
			names = append(names, qualified(t))
		}
	}
	if len(names) == 0 {
		return nil
	}
	if _, err := s.pool.Exec(ctx, "TRUNCATE "+strings.Join(names, ", ")); err != nil {
		return fmt.Errorf("postgres target %s: clear: %w", s.where, err)
	}
	return nil
}
