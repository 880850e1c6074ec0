package testenv_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/understudy/understudy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// redisCmd sends one inline command and returns the first reply line.
func redisCmd(t *testing.T, addr, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s\r\n", cmd)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

func TestRedis(t *testing.T) {
	start := time.Now()
	s := testenv.Redis(t)
	t.Logf("redis ready in %s at %s", time.Since(start), s.Addr)
	if got := redisCmd(t, s.Addr, "PING"); got != "+PONG" {
		t.Fatalf("PING = %q", got)
	}
	if s2 := testenv.Redis(t); s2 != s {
		t.Fatal("second Redis call started another server")
	}
	u1, u2 := s.URL(t), s.URL(t)
	if u1 == u2 || !strings.HasPrefix(u1, "redis://127.0.0.1:") {
		t.Fatalf("URLs %q, %q: want distinct redis://127.0.0.1:PORT/N", u1, u2)
	}
	if got := redisCmd(t, s.Addr, "CONFIG GET databases"); got != "*2" {
		t.Fatalf("CONFIG GET databases = %q", got)
	}
}

func TestPostgres(t *testing.T) {
	start := time.Now()
	s := testenv.Postgres(t)
	t.Logf("postgres ready in %s on port %d", time.Since(start), s.Port)
	if s2 := testenv.Postgres(t); s2 != s {
		t.Fatal("second Postgres call started another server")
	}
	if got := pgQuery(t, s.DSN("postgres"), "SHOW wal_level"); got != "logical" {
		t.Fatalf("wal_level = %q, want logical", got)
	}
	a, b := s.NewDatabase(t), s.NewDatabase(t)
	if a == b {
		t.Fatalf("NewDatabase returned %q twice", a)
	}
	s.Exec(t, a, "CREATE TABLE t (id int primary key)", "INSERT INTO t VALUES (1)")
	if got := pgQuery(t, a, "SELECT count(*)::text FROM t"); got != "1" {
		t.Fatalf("count in first db = %q", got)
	}
	if got := pgQuery(t, b, "SELECT count(*)::text FROM pg_tables WHERE tablename = 't'"); got != "0" {
		t.Fatalf("second database sees the first one's table")
	}
}

func pgQuery(t *testing.T, dsn, q string) string {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var s string
	if err := c.QueryRow(ctx, q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

func TestMariaDB(t *testing.T) {
	start := time.Now()
	s := testenv.MariaDB(t)
	t.Logf("mariadb ready in %s on port %d", time.Since(start), s.Port)
	if s2 := testenv.MariaDB(t); s2 != s {
		t.Fatal("second MariaDB call started another server")
	}
	if got := s.Query(t, "", "SELECT @@binlog_format, @@log_bin, @@server_id"); got != "ROW\t1\t1" {
		t.Fatalf("binlog_format, log_bin, server_id = %q, want ROW 1 1", got)
	}
	a, b := s.NewDatabase(t), s.NewDatabaseName(t)
	if a == s.DSN(b) {
		t.Fatalf("NewDatabase returned %q twice", a)
	}
	s.Exec(t, a, "CREATE TABLE t (id int primary key)", "INSERT INTO t VALUES (1)")
	if got := s.Query(t, a, "SELECT count(*) FROM t"); got != "1" {
		t.Fatalf("count in first db = %q", got)
	}
	if got := s.Query(t, s.URL(b), "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()"); got != "0" {
		t.Fatalf("second database has %s tables, want 0", got)
	}
}

func TestDynamoDB(t *testing.T) {
	start := time.Now()
	s := testenv.DynamoDB(t)
	t.Logf("dynamodb local ready in %s at %s", time.Since(start), s.Endpoint)
	if s2 := testenv.DynamoDB(t); s2 != s {
		t.Fatal("second DynamoDB call started another server")
	}
	_, err := s.Call("CreateTable", `{"TableName":"things","AttributeDefinitions":[{"AttributeName":"id","AttributeType":"S"}],
		"KeySchema":[{"AttributeName":"id","KeyType":"HASH"}],"BillingMode":"PAY_PER_REQUEST"}`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Call("ListTables", "{}")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, `"TableNames":["things"]`) {
		t.Fatalf("ListTables = %s, want table things", got)
	}
}

// A missing jar is reported with where it was looked for, which the skip (or CI
// failure) message carries next to the install hint.
func TestMissingDynamoDBJarNamesTheDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("UNDERSTUDY_DDB_LOCAL_DIR", dir)
	_, err := testenv.StartDynamoDB("")
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("StartDynamoDB without a jar: err = %v, want one naming %s", err, dir)
	}
}
