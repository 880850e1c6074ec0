package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// MariaDBServer is a running MariaDB 10.11 with a ROW binlog, passwordless root,
// listening on 127.0.0.1 only.
type MariaDBServer struct {
	Port int
	// ServerID is the server's @@server_id (1 for MariaDB, 2 for MariaDBTarget).
	ServerID int

	client string // path of the mariadb command-line client
	proc   *process
}

// mariadbDBs numbers databases across every MariaDB server of the process, so a
// test's production and test databases never share a name (which would hide a
// query sent to the wrong server).
var mariadbDBs atomic.Uint64

var testMariaDB, testMariaDBTarget lazy[*MariaDBServer]

// MariaDB returns this test binary's MariaDB server, starting it on first use. It
// skips the test when MariaDB is missing (fails under CI=true).
func MariaDB(t testing.TB) *MariaDBServer {
	t.Helper()
	return shared(t, &testMariaDB, "MariaDB", StartMariaDB, func(s *MariaDBServer) *process { return s.proc })
}

// MariaDBTarget returns this test binary's second MariaDB server (server-id 2),
// starting it on first use: the "test" side of end-to-end tests, so that
// production and replica are separate servers as in a deployment. One is shared
// by all tests of the binary (each uses its own databases); starting it costs
// about as much as the first.
func MariaDBTarget(t testing.TB) *MariaDBServer {
	t.Helper()
	start := func(dir string) (*MariaDBServer, error) { return StartMariaDBWithID(dir, 2) }
	return shared(t, &testMariaDBTarget, "second MariaDB", start, func(s *MariaDBServer) *process { return s.proc })
}

// StartMariaDB starts MariaDB (server-id 1) outside tests (e.g. for a demo or a
// benchmark). Its data lives in dir, initialised when empty and reused otherwise;
// dir "" means a new temp dir removed by Stop. The server runs as user mysql when
// we are root.
func StartMariaDB(dir string) (*MariaDBServer, error) { return StartMariaDBWithID(dir, 1) }

// StartMariaDBWithID is StartMariaDB with another server id, for a second server
// that must replicate from (or be told apart from) the first.
func StartMariaDBWithID(dir string, serverID int) (*MariaDBServer, error) {
	installDB, err := lookPath("mariadb-install-db")
	if err != nil {
		return nil, err
	}
	mariadbd, err := lookPath("mariadbd", "/usr/sbin")
	if err != nil {
		return nil, err
	}
	client, err := lookPath("mariadb")
	if err != nil {
		return nil, err
	}
	dir, owned, err := serverDir(dir, "my")
	if err != nil {
		return nil, err
	}
	s, err := startMariaDB(installDB, mariadbd, client, dir, owned, serverID)
	if err != nil && owned {
		_ = os.RemoveAll(dir)
	}
	return s, err
}

func startMariaDB(installDB, mariadbd, client, dir string, owned bool, serverID int) (*MariaDBServer, error) {
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	cred, err := serviceUser("mysql", dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(data, "mysql")); err != nil {
		// --no-defaults: never read the machine's /etc/mysql config.
		err := runAs(cred, dir, installDB, "--no-defaults", "--datadir="+data,
			"--auth-root-authentication-method=normal", "--skip-test-db")
		if err != nil {
			return nil, err
		}
	}
	return withPortRetry(func(port int) (*MariaDBServer, error) {
		cmd := exec.Command(mariadbd, "--no-defaults",
			"--datadir="+data,
			"--socket="+filepath.Join(dir, "s.sock"),
			"--pid-file="+filepath.Join(dir, "mariadbd.pid"),
			"--port="+strconv.Itoa(port),
			"--bind-address=127.0.0.1",
			"--skip-name-resolve",
			"--max-connections=500",
			"--server-id="+strconv.Itoa(serverID),
			"--log-bin="+filepath.Join(data, "binlog"),
			"--binlog-format=ROW",
			"--binlog-row-image=FULL",
			// A test server need not survive a power cut.
			"--innodb-flush-log-at-trx-commit=2",
			"--sync-binlog=0")
		cmd.Dir = dir
		p, err := startProcess("mariadbd", cmd, dir, filepath.Join(dir, "mariadbd.log"), cred)
		if err != nil {
			return nil, err
		}
		s := &MariaDBServer{Port: port, ServerID: serverID, client: client, proc: p}
		if err := p.waitReady(func() error { _, err := s.query("", "SELECT 1"); return err }); err != nil {
			p.stop()
			return nil, err
		}
		p.removeDir = owned
		return s, nil
	})
}

// Stop shuts the server down and removes its temp dir.
func (s *MariaDBServer) Stop() { s.proc.stop() }

// DSN returns the go-sql-driver/go-mysql style DSN "root@tcp(127.0.0.1:PORT)/db".
func (s *MariaDBServer) DSN(db string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s", s.Port, db)
}

// URL returns the URL form "mysql://root@127.0.0.1:PORT/db", as config files name it.
func (s *MariaDBServer) URL(db string) string {
	return fmt.Sprintf("mysql://root@127.0.0.1:%d/%s", s.Port, db)
}

// NewDatabase creates a database no other caller got and returns its DSN. It is
// not dropped: the whole server goes away with the test binary.
func (s *MariaDBServer) NewDatabase(t testing.TB) string {
	t.Helper()
	return s.DSN(s.NewDatabaseName(t))
}

// NewDatabaseName is NewDatabase returning the database's name, for URL.
func (s *MariaDBServer) NewDatabaseName(t testing.TB) string {
	t.Helper()
	name := dbName(t, mariadbDBs.Add(1))
	s.Exec(t, "", "CREATE DATABASE "+name)
	return name
}

// Exec runs the statements in order on the database named by dsn (a DSN or URL
// from this server, or "" for none) through the mariadb client, failing the test
// on the first error.
func (s *MariaDBServer) Exec(t testing.TB, dsn string, sql ...string) {
	t.Helper()
	for _, q := range sql {
		if _, err := s.query(dsn, q); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
}

// Query runs one statement and returns the rows as tab-separated lines without a
// header, failing the test on error.
func (s *MariaDBServer) Query(t testing.TB, dsn, sql string) string {
	t.Helper()
	out, err := s.query(dsn, sql)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return out
}

func (s *MariaDBServer) query(dsn, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"--no-defaults", "-h127.0.0.1", "-P" + strconv.Itoa(s.Port), "-uroot",
		"--batch", "--skip-column-names", "-e", sql}
	if db := dsnDatabase(dsn); db != "" {
		args = append(args, db)
	}
	out, err := exec.CommandContext(ctx, s.client, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb %q: %w: %s", sql, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimRight(string(out), "\n"), nil
}

// dsnDatabase extracts the database from "root@tcp(host:port)/db?params" or
// "mysql://root@host:port/db?params".
func dsnDatabase(dsn string) string {
	dsn = strings.TrimPrefix(dsn, "mysql://")
	i := strings.LastIndexByte(dsn, '/')
	if i < 0 {
		return ""
	}
	db := dsn[i+1:]
	if j := strings.IndexByte(db, '?'); j >= 0 {
		db = db[:j]
	}
	return db
}
