package mysql

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/pingcap/tidb/pkg/parser/ast"

	"github.com/understudy/understudy/testenv"
)

// parsedDDL applies q to the history the way the stream does, without the
// information_schema fallback: the test wants to see the parser path's result.
func parsedDDL(t *testing.T, st *streamer_, db, q string) (*tableInfo, error) {
	t.Helper()
	m := ddlTable.FindStringSubmatch(q)
	if m == nil {
		t.Fatalf("not a table DDL: %s", q)
	}
	name := statementTables(m[1], m[3], db)[0]
	stmt, err := st.parseDDL(q[:len(q)-len(m[3])], m[3])
	if err != nil {
		return nil, err
	}
	switch x := stmt.(type) {
	case *ast.CreateTableStmt:
		return st.src.created(context.Background(), name, db, x, func(n string) (*tableInfo, bool) { ti, ok := st.tables[n]; return ti, ok })
	case *ast.AlterTableStmt:
		info, _, err := st.src.altered(st.tables[name], db, x)
		return info, err
	}
	t.Fatalf("%T", stmt)
	return nil, nil
}

// sameDescription fails the test unless the parsed description equals the one
// information_schema gives for the same table.
func sameDescription(t *testing.T, q string, parsed, described *tableInfo) {
	t.Helper()
	p, _ := json.MarshalIndent(parsed, "", " ")
	d, _ := json.MarshalIndent(described, "", " ")
	if string(p) != string(d) {
		t.Errorf("after %s\nparsed:\n%s\ninformation_schema:\n%s", q, p, d)
	}
}

// TestParsedDDLDescribesTablesAsInformationSchemaDoes is what makes the parsed
// schema history interchangeable with the information_schema one: for CREATE
// TABLE with every type the source supports (allTypes) and for a sequence of
// ALTERs, the description built from the statement equals the one read from the
// server after running it — column types as text, kinds, nullability, enum
// labels, charsets and key.
func TestParsedDDLDescribesTablesAsInformationSchemaDoes(t *testing.T) {
	my := testenv.MariaDB(t)
	db := my.NewDatabaseName(t)
	dsn := my.DSN(db)
	s, _ := openSource(t, my.URL(db))
	st := &streamer_{src: s, tables: map[string]*tableInfo{}}
	ctx := context.Background()
	check := func(q string) {
		t.Helper()
		parsed, err := parsedDDL(t, st, db, q)
		if err != nil {
			t.Fatalf("%s: not parsed: %v", q, err)
		}
		my.Exec(t, dsn, q)
		described, problem, err := s.describe(ctx, parsed.Table.Name)
		if err != nil || problem != "" {
			t.Fatalf("describe after %s: %v %s", q, err, problem)
		}
		sameDescription(t, q, parsed, described)
		st.tables[parsed.Table.Name] = described
	}

	check(allTypes)
	for _, q := range []string{
		`CREATE TABLE more (
			a int(5) zerofill, b boolean, c bool NOT NULL, d decimal, e numeric(7) unsigned, f float(7,3), g float(30),
			h double(10,2) unsigned, i real, j char, k char(3) binary, l varchar(3) COLLATE latin1_bin,
			m varchar(4) CHARACTER SET utf8, n text CHARACTER SET ascii, o tinytext, p mediumtext, q longtext,
			r tinyblob, s mediumblob, u longblob, v year(4), w integer, x int1, y middleint unsigned, z bigint(12),
			aa enum('it''s', 'a\\b', 'c') CHARACTER SET latin1, ab set('x','y') NOT NULL DEFAULT 'x',
			ac varchar(5) CHARACTER SET binary, ad time(6), ae timestamp NULL DEFAULT NULL,
			af datetime NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, ag int UNIQUE,
			ah int GENERATED ALWAYS AS (a + 1) VIRTUAL, ai serial, aj json,
			PRIMARY KEY (w, z), KEY (b), UNIQUE KEY u (c, d)
		) ENGINE=InnoDB DEFAULT CHARSET=latin1 COMMENT 'x'`,
		"CREATE TABLE collated (id bigint unsigned PRIMARY KEY, a varchar(3), b text) COLLATE utf8mb4_unicode_ci",
		"CREATE TABLE inherited (id int AUTO_INCREMENT PRIMARY KEY, a varchar(3), e enum('x'))",
		"CREATE TABLE IF NOT EXISTS `quoted``name` (`i``d` int NOT NULL, PRIMARY KEY (`i``d`)) CHARSET ascii",
	} {
		check(q)
	}
	for _, q := range []string{
		"ALTER TABLE inherited ADD COLUMN b int FIRST",
		"ALTER TABLE inherited ADD COLUMN c varchar(5) AFTER id, ADD d char(2) CHARACTER SET latin1",
		"ALTER TABLE inherited ADD (e1 int, e2 text)",
		"ALTER TABLE inherited DROP COLUMN b, DROP e1",
		"ALTER TABLE inherited MODIFY c varchar(50) NOT NULL FIRST",
		"ALTER TABLE inherited MODIFY COLUMN d int unsigned",
		"ALTER TABLE inherited CHANGE COLUMN id ident bigint, ALGORITHM=COPY",
		"ALTER TABLE inherited CHANGE a a2 tinyint AFTER e2",
		"ALTER TABLE inherited RENAME COLUMN e2 TO e3, RENAME COLUMN d TO d2",
		"ALTER TABLE inherited DEFAULT CHARSET latin1",
		"ALTER TABLE inherited ADD COLUMN f varchar(9), ADD INDEX (c), ENGINE=InnoDB",
		"ALTER TABLE inherited DROP PRIMARY KEY, ADD PRIMARY KEY (c, ident)",
		"ALTER TABLE inherited ADD COLUMN IF NOT EXISTS f int, DROP COLUMN IF EXISTS zz, DROP INDEX c",
		"ALTER TABLE inherited ALTER COLUMN f SET DEFAULT 'x', MODIFY e enum('x','y') AFTER f",
		"ALTER TABLE inherited DROP COLUMN a2",
		"ALTER TABLE inherited ADD COLUMN ts timestamp, ADD ts6 timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)",
		"ALTER TABLE more DROP COLUMN k, ADD COLUMN k2 datetime(3) AFTER j, MODIFY ab set('x','y','z')",
		"ALTER TABLE `quoted``name` ADD `n``1` varchar(2)",
		"ALTER ONLINE TABLE more ADD COLUMN online int, ADD fx fixed(5,1), ADD dc dec(4) unsigned zerofill",
		"CREATE OR REPLACE TABLE inherited (id int PRIMARY KEY, r varchar(3) CHARACTER SET latin1 COLLATE latin1_general_ci)",
		"CREATE TABLE liked LIKE inherited",
	} {
		check(q)
	}
}

// Statements the history does not model are reported as such, so the stream
// falls back to information_schema.
func TestUnmodeledDDLIsReported(t *testing.T) {
	my := testenv.MariaDB(t)
	db := my.NewDatabaseName(t)
	my.Exec(t, my.DSN(db), "CREATE TABLE t (id int PRIMARY KEY, a varchar(3))")
	s, _ := openSource(t, my.URL(db), "t")
	info, _ := s.table(db + ".t")
	st := &streamer_{src: s, tables: map[string]*tableInfo{db + ".t": info}}
	for _, q := range []string{
		"ALTER TABLE t ADD COLUMN b inet6",                          // MariaDB type
		"ALTER TABLE t ADD COLUMN b int INVISIBLE",                  // MariaDB syntax
		"ALTER TABLE t CONVERT TO CHARACTER SET latin1",             // every column
		"ALTER TABLE t ADD COLUMN j longtext CHECK (json_valid(j))", // MariaDB JSON by check
		"ALTER TABLE t ADD COLUMN n nchar(3)",
		"ALTER TABLE t ADD COLUMN tx text(300)",
		"ALTER TABLE t ADD COLUMN g point",
		"ALTER TABLE t ADD COLUMN u uuid",
		"CREATE TABLE t2 AS SELECT * FROM t",
		"CREATE TABLE t2 LIKE elsewhere",
	} {
		_, err := parsedDDL(t, st, db, q)
		if _, ok := err.(errUnmodeled); !ok {
			t.Errorf("%s: %v, want errUnmodeled", q, err)
		}
	}
	if _, err := parsedDDL(t, st, db, "ALTER TABLE t DROP PRIMARY KEY"); err != errNoKey {
		t.Errorf("DROP PRIMARY KEY: %v", err)
	}
}
