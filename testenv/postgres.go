package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresBinDir is where Debian's postgresql-15 package puts the server binaries
// (they are not on PATH).
const postgresBinDir = "/usr/lib/postgresql/15/bin"

// PostgresServer is a running PostgreSQL 15 with wal_level=logical, trust auth
// for the superuser "postgres", listening on 127.0.0.1 only.
type PostgresServer struct {
	Host string // "127.0.0.1"
	Port int

	proc   *process
	nextDB atomic.Uint64
}

var testPostgres lazy[*PostgresServer]

// Postgres returns this test binary's Postgres server, starting it on first use.
// It skips the test when Postgres 15 is missing (fails under CI=true).
func Postgres(t testing.TB) *PostgresServer {
	t.Helper()
	return shared(t, &testPostgres, "Postgres", StartPostgres, func(s *PostgresServer) *process { return s.proc })
}

// StartPostgres starts Postgres outside tests (e.g. for a demo). The cluster lives
// in dir, which is initialised when empty and reused otherwise; dir "" means a new
// temp dir removed by Stop. The server runs as user postgres when we are root.
func StartPostgres(dir string) (*PostgresServer, error) {
	initdb, err := lookPath("initdb", postgresBinDir)
	if err != nil {
		return nil, fmt.Errorf("postgres 15: %w", err)
	}
	postgres, err := lookPath("postgres", postgresBinDir)
	if err != nil {
		return nil, fmt.Errorf("postgres 15: %w", err)
	}
	dir, owned, err := serverDir(dir, "pg")
	if err != nil {
		return nil, err
	}
	s, err := startPostgres(initdb, postgres, dir, owned)
	if err != nil && owned {
		_ = os.RemoveAll(dir)
	}
	return s, err
}

func startPostgres(initdb, postgres, dir string, owned bool) (*PostgresServer, error) {
	data := filepath.Join(dir, "data")
	// The socket lives in the short top dir: its path must stay under ~107 bytes.
	sock := dir
	cred, err := serviceUser("postgres", dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		// --no-sync: a test cluster need not survive a power cut.
		err := runAs(cred, dir, initdb, "-D", data, "-U", "postgres", "--auth=trust",
			"-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
		if err != nil {
			return nil, err
		}
	}
	return withPortRetry(func(port int) (*PostgresServer, error) {
		cmd := exec.Command(postgres, "-D", data, "-p", strconv.Itoa(port), "-k", sock,
			"-c", "listen_addresses=127.0.0.1",
			"-c", "wal_level=logical",
			"-c", "max_replication_slots=20",
			"-c", "max_wal_senders=20",
			"-c", "max_connections=300",
			"-c", "fsync=off")
		cmd.Dir = dir
		p, err := startProcess("postgres", cmd, dir, filepath.Join(dir, "postgres.log"), cred)
		if err != nil {
			return nil, err
		}
		// SIGINT is Postgres' fast shutdown; SIGTERM would wait for every client
		// (a leaked pool, a replication stream) to disconnect.
		p.stopSignal = syscall.SIGINT
		s := &PostgresServer{Host: "127.0.0.1", Port: port, proc: p}
		if err := p.waitReady(func() error { return s.ping() }); err != nil {
			p.stop()
			return nil, err
		}
		p.removeDir = owned
		return s, nil
	})
}

// Stop shuts the server down and removes its temp dir.
func (s *PostgresServer) Stop() { s.proc.stop() }

func (s *PostgresServer) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	var one int
	return c.QueryRow(ctx, "select 1").Scan(&one)
}

// DSN returns the URL of database db: "postgres://postgres@127.0.0.1:PORT/db?sslmode=disable".
func (s *PostgresServer) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", s.Host, s.Port, db)
}

// NewDatabase creates a database no other caller got and returns its DSN. It is
// not dropped: the whole cluster goes away with the test binary.
func (s *PostgresServer) NewDatabase(t testing.TB) string {
	t.Helper()
	return s.DSN(s.NewDatabaseName(t))
}

// NewDatabaseName is NewDatabase returning the database's name.
func (s *PostgresServer) NewDatabaseName(t testing.TB) string {
	t.Helper()
	name := dbName(t, s.nextDB.Add(1))
	s.Exec(t, s.DSN("postgres"), "CREATE DATABASE "+name)
	return name
}

// Exec runs each SQL string on dsn in order (one string may hold several
// statements separated by ";"), failing the test on the first error.
func (s *PostgresServer) Exec(t testing.TB, dsn string, sql ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("testenv: connect %s: %v", dsn, err)
	}
	defer c.Close(context.Background())
	for _, q := range sql {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("testenv: %s: %v", q, err)
		}
	}
}
