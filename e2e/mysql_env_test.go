package e2e

// Helpers of the MariaDB end-to-end tests (mysql_*_test.go). They reuse the
// package's process handling (env.start/run/must/verify/status, proc, waitFor):
// an env whose prod/test are mysql:// URLs works unchanged for everything that
// only runs the binary. Production and test are two MariaDB servers, as in a
// deployment: testenv.MariaDB (server-id 1) holds each test's production database
// and testenv.MariaDBTarget (server-id 2) its test database; both are shared by the
// whole package (one start each), every test using databases of its own.

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/understudy/understudy/testenv"
)

// myEnv is one MariaDB scenario: production and test databases and a config.
type myEnv struct {
	*env
	my             *testenv.MariaDBServer // production
	tgt            *testenv.MariaDBServer // test
	prodDB, testDB string
}

// newMyEnv creates the databases, runs schema on production and writes the
// config. In top and pipelines, PROD names the production database (for table
// names); ${PROD_URL}/${TEST_URL} are the mysql:// URLs.
func newMyEnv(t *testing.T, schema, top, pipelines string) *myEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: runs real servers and the built binary")
	}
	my, tgt := testenv.MariaDB(t), testenv.MariaDBTarget(t)
	m := &myEnv{my: my, tgt: tgt, prodDB: my.NewDatabaseName(t), testDB: tgt.NewDatabaseName(t)}
	m.env = &env{t: t, prod: my.URL(m.prodDB), test: tgt.URL(m.testDB), dir: t.TempDir()}
	if schema != "" {
		my.Exec(t, my.DSN(m.prodDB), "SET NAMES utf8mb4;\n"+schema)
	}
	m.config = filepath.Join(m.dir, "understudy.yaml")
	m.writeConfig(top, pipelines)
	return m
}

// writeConfig replaces the config, with PROD standing for the production database.
func (m *myEnv) writeConfig(top, pipelines string) {
	m.t.Helper()
	cfg := "secret: ${UNDERSTUDY_SECRET}\nmetrics: off\n" + top + "pipelines:\n" + pipelines
	cfg = strings.ReplaceAll(cfg, "PROD.", m.prodDB+".")
	if err := os.WriteFile(m.config, []byte(cfg), 0o600); err != nil {
		m.t.Fatal(err)
	}
}

// exec runs statements on production.
func (m *myEnv) exec(sql ...string) {
	m.t.Helper()
	for i := range sql {
		sql[i] = "SET NAMES utf8mb4;\n" + sql[i]
	}
	m.my.Exec(m.t, m.my.DSN(m.prodDB), sql...)
}

// server is the server holding db: the test server for the test database,
// production for every other.
func (m *myEnv) server(db string) *testenv.MariaDBServer {
	if db == m.testDB {
		return m.tgt
	}
	return m.my
}

// execTest runs statements on the test database (damage for verify to find).
func (m *myEnv) execTest(sql ...string) {
	m.t.Helper()
	m.tgt.Exec(m.t, m.tgt.DSN(m.testDB), sql...)
}

// dsn is the go-sql-driver DSN of db (on its server) with the options the tests
// need.
func (m *myEnv) dsn(db string) string {
	return m.server(db).DSN(db) + "?charset=utf8mb4&multiStatements=true&loc=UTC"
}

// myTryQuery returns every row of q on database db, each value as its text
// (NULL as nil).
func (m *myEnv) tryQuery(db, q string, args ...any) ([][]*string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := sql.Open("mysql", m.dsn(db))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]*string
	for rows.Next() {
		raw := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range raw {
			ptrs[i] = &raw[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]*string, len(cols))
		for i, b := range raw {
			if b != nil {
				s := string(b)
				row[i] = &s
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

func (m *myEnv) query(db, q string, args ...any) [][]*string {
	m.t.Helper()
	out, err := m.tryQuery(db, q, args...)
	if err != nil {
		m.t.Fatalf("%s: %v", q, err)
	}
	return out
}

// scalar returns the single value of q on db; "" for NULL.
func (m *myEnv) scalar(db, q string, args ...any) string {
	m.t.Helper()
	rows := m.query(db, q, args...)
	if len(rows) != 1 || len(rows[0]) != 1 {
		m.t.Fatalf("%s: %d rows, want 1", q, len(rows))
	}
	return str(rows[0][0])
}

// count returns count(*) of table (may carry a WHERE) on db, -1 while it cannot
// be read.
func (m *myEnv) count(db, table string) int64 {
	rows, err := m.tryQuery(db, "SELECT count(*) FROM "+table)
	if err != nil || len(rows) != 1 || rows[0][0] == nil {
		return -1
	}
	var n int64
	fmt.Sscan(*rows[0][0], &n)
	return n
}

// waitConverged polls until fp (one row of aggregates over what the rules keep)
// renders alike on production and test, then, when verifyToo, until `understudy
// verify` exits 0 (which needs a mapping store several processes may share).
func (m *myEnv) waitConverged(fp string, verifyToo bool, alive *proc, d time.Duration) {
	t := m.t
	t.Helper()
	start := time.Now()
	var last string
	for {
		if alive != nil && !alive.running() {
			t.Fatalf("waiting for convergence: understudy %s exited:\n%s", alive.name, alive.output())
		}
		want, err1 := m.tryQuery(m.prodDB, fp)
		got, err2 := m.tryQuery(m.testDB, fp)
		if err1 == nil && err2 == nil && fingerprint(want) == fingerprint(got) {
			if !verifyToo {
				t.Logf("converged %s after the writes stopped", time.Since(start).Round(time.Millisecond))
				return
			}
			code, out := m.verify()
			if code == 0 {
				t.Logf("converged and verified %s after the writes stopped", time.Since(start).Round(time.Millisecond))
				return
			}
			last = out
		} else {
			last = fmt.Sprintf("production %s (%v), target %s (%v)", fingerprint(want), err1, fingerprint(got), err2)
		}
		if time.Since(start) > d {
			t.Fatalf("target not equal to transform(production) within %s; last check:\n%s", d, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mariadbDump returns the dump of database db (every table, understudy's own too).
func (m *myEnv) mariadbDump(db string) string {
	m.t.Helper()
	out, err := execOutput("mariadb-dump", "--no-defaults", "-h127.0.0.1", fmt.Sprintf("-P%d", m.server(db).Port), "-uroot",
		"--default-character-set=utf8mb4", "--skip-extended-insert", db)
	if err != nil {
		m.t.Fatalf("mariadb-dump %s: %v", db, err)
	}
	return out
}

func execOutput(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	return string(out), err
}
