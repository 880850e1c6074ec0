package e2e

import (
	"strings"
	"testing"

	"github.com/understudy/understudy/testenv"
)

// TestMySQLAndPostgresShareADomain runs two pipelines from one config — MariaDB →
// MariaDB and Postgres → Postgres — whose name columns use one domain and one
// mapping store: the same production surname must get the same replacement in
// both targets, a surname only one side has must still be replaced, and NULL/”
// stay as they are. Mappings live in Redis, shared as they would be by separate
// processes; the same holds for the embedded store inside one process.
func TestMySQLAndPostgresShareADomain(t *testing.T) {
	m := newMyEnv(t, `
CREATE TABLE clients (id int unsigned NOT NULL PRIMARY KEY, surname varchar(80), city varchar(40)) DEFAULT CHARSET=utf8mb4;
INSERT INTO clients VALUES (1, 'Johnson', 'Graz'), (2, 'Müller-Lüdenscheidt', 'Wien'), (3, NULL, 'Linz'),
  (4, '', 'Graz'), (5, '佐藤', 'Tokyo'), (6, 'OnlyInMariaDB', 'Wels'), (7, 'Johnson', 'Bern');`, "", "")
	e := newEnv(t, `
CREATE TABLE employees (id bigint PRIMARY KEY, last_name text, dept text);
INSERT INTO employees VALUES (10, '佐藤', 'ops'), (11, 'Johnson', 'dev'), (12, 'OnlyInPostgres', 'dev'),
  (13, NULL, 'hr'), (14, '', 'hr'), (15, 'Müller-Lüdenscheidt', 'ops');`, "", "")
	redisURL := testenv.Redis(t).URL(t)

	// One config, both pipelines; env.start passes PROD_URL/TEST_URL of Postgres,
	// MY_PROD_URL/MY_TEST_URL of MariaDB.
	m.extraEnv = []string{"MY_PROD_URL=" + m.prod, "MY_TEST_URL=" + m.test, "PROD_URL=" + e.prod, "TEST_URL=" + e.test}
	m.writeConfig("mappings: "+redisURL+"\n", `
  - name: pg
    source: ${PROD_URL}
    target: ${TEST_URL}
    tables: [public.employees]
    rules:
      public.employees:
        last_name: {replace: last_name, domain: surname}
  - name: my
    source: ${MY_PROD_URL}
    target: ${MY_TEST_URL}
    tables: [PROD.clients]
    rules:
      PROD.clients:
        surname: {replace: last_name, domain: surname}
`)
	out := m.must("load")
	if strings.Count(out, "initial load complete") < 2 {
		t.Errorf("load output does not show both pipelines loaded:\n%s", out)
	}

	prodMy := pairsByValue(m.query(m.prodDB, "SELECT id, surname FROM clients"), m.query(m.testDB, "SELECT id, surname FROM clients"))
	prodPG := pairsByValue(query(t, e.prod, "SELECT id::text, last_name FROM employees"), query(t, e.test, "SELECT id::text, last_name FROM employees"))
	var all []pair
	shared := 0
	for v, r := range prodMy {
		all = append(all, pair{where: "mariadb clients " + v, prod: strPtr(v), repl: r})
		if pr, ok := prodPG[v]; ok {
			shared++
			if str(pr) != str(r) {
				t.Errorf("surname %q: MariaDB target has %q, Postgres target %q", v, str(r), str(pr))
			}
		}
	}
	for v, r := range prodPG {
		all = append(all, pair{where: "postgres employees " + v, prod: strPtr(v), repl: r})
	}
	if shared < 3 {
		t.Fatalf("only %d production surnames are on both sides; the test compares too little", shared)
	}
	checkDomain(t, "surname", all)
	// NULL stays NULL on both sides (pairsByValue skips NULL; check directly).
	if n := m.scalar(m.testDB, "SELECT count(*) FROM clients WHERE surname IS NULL"); n != "1" {
		t.Errorf("MariaDB target: %s NULL surnames, want 1", n)
	}
	if n := scalar(t, e.test, "SELECT count(*) FROM employees WHERE last_name IS NULL"); n != "1" {
		t.Errorf("Postgres target: %s NULL surnames, want 1", n)
	}
}

// pairsByValue joins production and replica rows (id, value) by id and returns
// production value → replacement, skipping NULLs.
func pairsByValue(prod, repl [][]*string) map[string]*string {
	byID := map[string]*string{}
	for _, r := range repl {
		byID[*r[0]] = r[1]
	}
	out := map[string]*string{}
	for _, p := range prod {
		if p[1] == nil {
			continue
		}
		out[*p[1]] = byID[*p[0]]
	}
	return out
}

func strPtr(s string) *string { return &s }
