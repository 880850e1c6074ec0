package e2e

import (
	"strings"
	"testing"
	"time"
)

const myDDLSchema = `
CREATE TABLE a (id int PRIMARY KEY, name varchar(40)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE b (id int PRIMARY KEY, name varchar(40)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE c (id int PRIMARY KEY, v int);
CREATE TABLE x (id int PRIMARY KEY, v varchar(20));
INSERT INTO a SELECT seq, CONCAT('Surname', seq) FROM seq_1_to_50;
INSERT INTO b VALUES (1, 'OldB');
INSERT INTO c SELECT seq, seq FROM seq_1_to_20;
INSERT INTO x SELECT seq, CONCAT('x', seq) FROM seq_1_to_30;
`

const myDDLPipeline = `
  - name: ddl
    source: ${PROD_URL}
    target: ${TEST_URL}
    tables: [PROD.a, PROD.b, PROD.c, PROD.x]
    rules:
      PROD.a:
        name: {replace: last_name, domain: surname}
      PROD.b:
        name: {replace: last_name, domain: surname}
`

// TestMySQLDDLReachesTheTarget runs production DDL under sync, on two servers:
// DROP + RENAME into the dropped name (followed, rows kept), DROP + CREATE of a
// selected name (cleared, new definition), the gh-ost/pt-online-schema-change
// cut-over swap (same rows, new column), ALTER … ADD COLUMN and TRUNCATE.
func TestMySQLDDLReachesTheTarget(t *testing.T) {
	m := newMyEnv(t, myDDLSchema, "", myDDLPipeline)
	sync := m.start("sync")
	// Tables load in parallel: wait for every one of them, not just the last listed.
	waitFor(t, time.Minute, "initial load", sync, func() bool {
		return m.count(m.testDB, "a") == 50 && m.count(m.testDB, "b") == 1 && m.count(m.testDB, "c") == 20 && m.count(m.testDB, "x") == 30
	})
	m.execTest("CREATE TABLE x_notes (id int PRIMARY KEY)") // a test-only table: left alone
	loadedA := m.query(m.testDB, "SELECT name FROM a WHERE id = 7")[0][0]

	m.exec("DROP TABLE b",
		"RENAME TABLE a TO b",
		"INSERT INTO b VALUES (51, 'Surname7')",
		"DROP TABLE c",
		"CREATE TABLE c (id int PRIMARY KEY, v int, w varchar(10))",
		"INSERT INTO c VALUES (1, 100, 'new')",
		"CREATE TABLE _x_gho LIKE x",
		"ALTER TABLE _x_gho ADD COLUMN z int",
		"INSERT INTO _x_gho SELECT id, v, NULL FROM x", // as gh-ost copies: the new column at its default
		"RENAME TABLE x TO _x_del, _x_gho TO x",
		"INSERT INTO x VALUES (31, 'x31', 62)",
		"ALTER TABLE b ADD COLUMN note varchar(10)",
		"UPDATE b SET note = 'n' WHERE id = 2",
		"CREATE TABLE done (id int PRIMARY KEY)", // not selected: ignored
		"TRUNCATE TABLE c",
		"INSERT INTO c VALUES (2, 200, 'last')")
	waitFor(t, time.Minute, "the DDL to reach the target", sync, func() bool {
		return m.count(m.testDB, "c WHERE w = 'last'") == 1
	})
	sync.stop(t, 10*time.Second)

	if n := m.count(m.testDB, "b"); n != 51 {
		t.Errorf("target b has %d rows, want a's 50 + 1 (a renamed into the dropped b)", n)
	}
	// b was kept (cleared) at its DROP, so a's rows moved into it and a was
	// cleared like a dropped table: understudy never drops a target table.
	if n := m.count(m.testDB, "a"); n != 0 {
		t.Errorf("target a has %d rows after RENAME TABLE a TO b, want 0", n)
	}
	renamed := m.query(m.testDB, "SELECT name FROM b WHERE id = 7")[0][0]
	streamed := m.query(m.testDB, "SELECT name FROM b WHERE id = 51")[0][0]
	if str(renamed) != str(loadedA) || str(streamed) != str(loadedA) || strings.HasPrefix(str(renamed), "Surname") {
		t.Errorf("b: renamed row %q, streamed row %q, loaded a row %q: want one replacement of Surname7", str(renamed), str(streamed), str(loadedA))
	}
	if got := m.scalar(m.testDB, "SELECT note FROM b WHERE id = 2"); got != "n" {
		t.Errorf("column added after the rename: note = %q", got)
	}
	if got := m.query(m.testDB, "SELECT id, v, w FROM c"); len(got) != 1 || str(got[0][2]) != "last" {
		t.Errorf("c after DROP, CREATE, TRUNCATE: %d rows, want only (2, 200, 'last')", len(got))
	}
	if got := m.scalar(m.testDB, "SELECT CONCAT(count(*), '/', sum(z), '/', count(z))"+" FROM x"); got != "31/62/1" {
		t.Errorf("x after the cut-over swap: count/sum(z)/count(z) = %s, want 31/62/1", got)
	}
	if n := m.count(m.testDB, "_x_gho"); n != -1 {
		t.Errorf("the unselected shadow table reached the target")
	}
	if n := m.count(m.testDB, "x_notes"); n != 0 {
		t.Errorf("the test-only table x_notes is gone")
	}
}
