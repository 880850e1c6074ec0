package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

// myBankSchema is the bank-like production schema on MariaDB with production's
// odd data: NULL and empty names, a retired enum value still in rows, unicode,
// JSON holding PII, blobs (empty too), sets (empty too), bits, unsigned keys,
// fractional datetimes/timestamps/times, a year, decimals, doubles, a latin1
// column and a composite primary key. Rows come from MariaDB's sequence engine.
const myBankSchema = `
CREATE TABLE customers (
  id bigint unsigned NOT NULL PRIMARY KEY,
  tenant_id int NOT NULL,
  first_name varchar(80),
  last_name varchar(80),
  email varchar(120) UNIQUE,
  phone varchar(20),
  ssn char(11),
  status enum('open','frozen','closed','legacy_gold') NOT NULL, -- legacy_gold: retired, still in data
  flags set('vip','staff','test'),
  profile json,
  photo blob,
  active bit(1),
  perms bit(10),
  credit_score decimal(6,2),
  risk double,
  birth_year year,
  wake time(3),
  created_at datetime(6) NOT NULL,
  updated_at timestamp(3) NULL DEFAULT NULL,
  note_latin1 varchar(60) CHARACTER SET latin1
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE accounts (
  customer_id bigint unsigned NOT NULL,
  seq smallint unsigned NOT NULL,
  holder_last_name varchar(80),
  iban varchar(40) NOT NULL,
  balance decimal(14,2) NOT NULL,
  opened_on date,
  PRIMARY KEY (customer_id, seq)
) DEFAULT CHARSET=utf8mb4;
INSERT INTO customers
SELECT seq, 1 + seq % 3,
  CASE WHEN seq % 50 = 0 THEN NULL WHEN seq % 50 = 1 THEN ''
       ELSE CONCAT(ELT(1 + seq % 8, 'Ada','Bob','Zoë','José','Łukasz','李','Amélie','Seán'), IF(seq % 3 = 0, '', CONCAT('-', seq % 41))) END,
  CASE WHEN seq % 40 = 0 THEN NULL WHEN seq % 40 = 1 THEN ''
       ELSE CONCAT(ELT(1 + seq % 8, 'Johnson','Müller-Lüdenscheidt','O''Connor','Nguyễn','Smith','García','Øvergård','佐藤'), IF(seq % 5 = 0, '', CONCAT(' ', seq % 97))) END,
  CASE WHEN seq = 7 THEN '' WHEN seq % 30 = 0 THEN NULL ELSE CONCAT('user', seq, '@corp.example') END,
  IF(seq % 9 = 0, NULL, CONCAT('+1-555-', LPAD(seq * 7 % 10000, 4, '0'))),
  IF(seq % 11 = 0, NULL, CONCAT(LPAD(seq * 7919 % 1000, 3, '0'), '-', LPAD(seq % 100, 2, '0'), '-', LPAD(seq, 4, '0'))),
  CASE seq % 10 WHEN 0 THEN 'legacy_gold' WHEN 1 THEN 'frozen' WHEN 2 THEN 'closed' ELSE 'open' END,
  CASE seq % 4 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN 'vip,test' ELSE 'staff' END,
  CASE seq % 6 WHEN 0 THEN NULL WHEN 1 THEN '{}'
       ELSE JSON_OBJECT('email', CASE WHEN seq = 7 THEN '' WHEN seq % 30 = 0 THEN NULL ELSE CONCAT('user', seq, '@corp.example') END,
                        'tier', ELT(1 + seq % 3, 'gold', 'silver', 'legacy_platinum'),
                        'limits', JSON_ARRAY(seq, seq * 1.5, true, NULL),
                        'greeting', CONCAT('Grüß Gott ', seq)) END,
  CASE seq % 7 WHEN 0 THEN NULL WHEN 1 THEN '' ELSE CONCAT(UNHEX(MD5(seq)), x'00ff00') END,
  IF(seq % 5 = 0, NULL, seq % 2),
  seq % 1024,
  IF(seq % 8 = 0, NULL, seq % 900 + 0.25),
  seq / 7e0,
  1940 + seq % 80,
  SEC_TO_TIME(seq * 37 % 86400 + 0.125),
  TIMESTAMP '2020-01-01 00:00:00' + INTERVAL seq * 2221234567 MICROSECOND,
  IF(seq % 3 = 0, NULL, TIMESTAMP '2024-02-29 23:59:59.999' - INTERVAL seq HOUR),
  IF(seq % 4 = 0, NULL, CONCAT('Café crème ', seq))
FROM seq_1_to_3000;
INSERT INTO accounts
SELECT c.id, s.seq, IF(s.seq = 2, NULL, c.last_name),
  CONCAT('DE', LPAD(c.id * 31 + s.seq, 20, '0')),
  ROUND((CAST((c.id * 7919 + s.seq) % 2000000 AS SIGNED) - 1000000) / 100, 2),
  DATE '2001-01-01' + INTERVAL c.id DAY
FROM customers c JOIN seq_1_to_2 s ON c.id % 3 <> 0 OR s.seq = 1;
`

const myBankPipeline = `
  - name: mybank
    source: ${PROD_URL}
    target: ${TEST_URL}
    tables: [PROD.customers, PROD.accounts]
    rules:
      PROD.customers:
        first_name: {replace: first_name, domain: given_name}
        last_name:  {replace: last_name, domain: surname}
        email:      {replace: email, domain: email}
        phone:      hash
        ssn:        {constant: "000-00-0000"}
        profile:
          json:
            $.email: {replace: email, domain: email}
      PROD.accounts:
        holder_last_name: {replace: last_name, domain: surname}
        iban: hash
    where:
      PROD.customers: tenant_id in [1, 2]
`

// myTableCheck compares one table of production with its replica by key: each
// kept expression (X. stands for the table) must be byte-identical; sensitive
// expressions are collected per domain.
type myTableCheck struct {
	table, key, where string
	keep              []string
	domain            map[string]string
}

var myBankChecks = []myTableCheck{
	{
		table: "customers", key: "p.id", where: "p.tenant_id IN (1, 2)",
		keep: []string{"X.tenant_id", "X.status", "X.flags", "X.photo", "X.active", "X.perms", "X.credit_score",
			"X.risk", "X.birth_year", "X.wake", "X.created_at", "X.updated_at", "X.note_latin1",
			"X.ssn IS NULL", "X.first_name IS NULL", "JSON_TYPE(X.profile)", "JSON_LENGTH(X.profile)",
			"JSON_EXTRACT(X.profile, '$.tier')", "JSON_EXTRACT(X.profile, '$.limits')", "JSON_EXTRACT(X.profile, '$.greeting')",
			"JSON_TYPE(JSON_EXTRACT(X.profile, '$.email'))",
			"CHAR_LENGTH(X.phone)", "REGEXP_REPLACE(REGEXP_REPLACE(X.phone, '[0-9]', '9'), '[A-Za-z]', 'A')"},
		domain: map[string]string{"X.first_name": "given_name", "X.last_name": "surname", "X.email": "email",
			"X.phone": "hash:phone",
			"IF(JSON_TYPE(JSON_EXTRACT(X.profile, '$.email')) = 'STRING', JSON_UNQUOTE(JSON_EXTRACT(X.profile, '$.email')), NULL)": "email"},
	},
	{
		table: "accounts", key: "CONCAT(p.customer_id, '/', p.seq)",
		keep:   []string{"X.balance", "X.opened_on", "CHAR_LENGTH(X.iban)"},
		domain: map[string]string{"X.holder_last_name": "surname", "X.iban": "hash:iban"},
	},
}

// checkMyAfterLoad compares production with its replica (two servers) by key:
// the same SELECT of every kept and sensitive expression runs on both, and rows
// are matched by key in Go. Kept values must be byte-identical; sensitive ones are
// returned as pairs per domain.
func checkMyAfterLoad(t *testing.T, m *myEnv) map[string][]pair {
	t.Helper()
	pairs := map[string][]pair{}
	for _, c := range myBankChecks {
		where := "TRUE"
		if c.where != "" {
			where = strings.ReplaceAll(c.where, "p.", "X.")
		}
		exprs := append([]string{strings.ReplaceAll(c.key, "p.", "X.")}, c.keep...)
		var domains []string
		for expr := range c.domain {
			domains = append(domains, expr)
		}
		exprs = append(exprs, domains...)
		sel := "SELECT " + strings.Join(exprs, ", ") + " FROM " + c.table + " X WHERE "
		prod := m.query(m.prodDB, sel+where)
		repl := m.query(m.testDB, sel+"TRUE")
		byKey := make(map[string][]*string, len(repl))
		for _, r := range repl {
			byKey[str(r[0])] = r
		}
		if len(prod) != len(repl) {
			t.Errorf("%s: production has %d rows after the filter, the replica %d", c.table, len(prod), len(repl))
		}
		missing, differs := 0, map[string]int{}
		first := map[string]string{}
		for _, p := range prod {
			key := str(p[0])
			r, ok := byKey[key]
			if !ok {
				missing++
				continue
			}
			for i, k := range c.keep {
				if str(p[1+i]) != str(r[1+i]) {
					if differs[k] == 0 {
						first[k] = key
					}
					differs[k]++
				}
			}
			for i, expr := range domains {
				j := 1 + len(c.keep) + i
				pairs[c.domain[expr]] = append(pairs[c.domain[expr]], pair{where: c.table + "." + expr + " key " + key, prod: p[j], repl: r[j]})
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d production rows missing from the replica", c.table, missing)
		}
		for k, n := range differs {
			t.Errorf("%s: kept column %s differs in %d rows (first key %s)", c.table, k, n, first[k])
		}
	}
	return pairs
}

// TestMySQLBankLoadDamageResetStream loads the MariaDB bank schema and checks the
// replica column by column; status shows a MySQL position; verify finds damage and
// reset repairs it; streamed changes (and a second ALTER … ADD COLUMN) agree with
// the loaded rows.
func TestMySQLBankLoadDamageResetStream(t *testing.T) {
	m := newMyEnv(t, myBankSchema, "", myBankPipeline)
	out := m.must("load")
	if !strings.Contains(out, "initial load complete") {
		t.Fatalf("load output:\n%s", out)
	}

	t.Run("AfterLoad", func(t *testing.T) {
		pairs := checkMyAfterLoad(t, m)
		for _, d := range []string{"given_name", "surname", "email", "hash:phone", "hash:iban"} {
			checkDomain(t, d, pairs[d])
		}
		for _, r := range m.query(m.testDB, `SELECT id, ssn FROM customers WHERE ssn IS NOT NULL`) {
			if *r[1] != "000-00-0000" {
				t.Errorf("customer %s: ssn %q, want the constant", *r[0], *r[1])
			}
		}
		emailRe := regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[a-z]+$`)
		for _, p := range pairs["email"] {
			if p.repl != nil && *p.repl != "" && !emailRe.MatchString(*p.repl) {
				t.Errorf("%s: replacement %q is not an e-mail address", p.where, *p.repl)
			}
		}
		if n := m.scalar(m.testDB, `SELECT count(*) FROM customers WHERE status = 'legacy_gold'`); n == "0" {
			t.Error("no legacy_gold customer reached the replica")
		}
		if n := m.scalar(m.testDB, `SELECT count(*) FROM customers WHERE tenant_id = 3`); n != "0" {
			t.Errorf("%s customers of the filtered tenant reached the replica", n)
		}
		if code, out := m.verify(); code != 0 {
			t.Errorf("verify after load: exit %d\n%s", code, out)
		}
	})

	t.Run("StatusShowsBinlogPosition", func(t *testing.T) {
		code, out, errOut := m.run("status", "--json")
		if code != 0 {
			t.Fatalf("status: exit %d\n%s", code, errOut)
		}
		var all []map[string]any
		if err := json.Unmarshal([]byte(out), &all); err != nil || len(all) != 1 {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		pos, _ := all[0]["position"].(string)
		detail, _ := all[0]["detail"].(string)
		// MariaDB: a GTID domain-server-seq and the binlog file:offset.
		if !regexp.MustCompile(`^gtid \d+-\d+-\d+(,\d+-\d+-\d+)* binlog\.\d{6}:\d+$`).MatchString(pos) {
			t.Errorf("status position %q is not a readable GTID + file:pos", pos)
		}
		if !regexp.MustCompile(`server at (gtid \S+ )?binlog\.\d+:\d+; \d+ binlog files kept \(\d+ bytes\)`).MatchString(detail) {
			t.Errorf("status detail %q does not report the server position and retained binlogs", detail)
		}
		t.Logf("status: %s", strings.TrimSpace(out))
	})

	t.Run("VerifyDetectsDamageResetRestores", func(t *testing.T) {
		before := map[string]int64{}
		for _, tb := range []string{"customers", "accounts"} {
			before[tb] = m.count(m.testDB, tb)
		}
		m.execTest(`
			DELETE FROM accounts WHERE customer_id % 7 = 0;
			UPDATE customers SET credit_score = 1.5 WHERE id = 41;
			INSERT INTO customers (id, tenant_id, first_name, status, created_at) VALUES (777777, 1, 'Stray', 'open', NOW());`)
		code, out := m.verify()
		if code != 1 {
			t.Fatalf("verify of a damaged replica: exit %d, want 1\n%s", code, out)
		}
		for _, tb := range []string{"customers", "accounts"} {
			if !strings.Contains(out, m.prodDB+"."+tb+": DIFFERENT") {
				t.Errorf("verify does not name %s.%s as different:\n%s", m.prodDB, tb, out)
			}
		}
		if strings.Contains(out, "Stray") || strings.Contains(out, "corp.example") {
			t.Errorf("verify printed a row value:\n%s", out)
		}
		out = m.must("reset", "--yes")
		if !strings.Contains(out, "reset done") {
			t.Errorf("reset output:\n%s", out)
		}
		if code, out := m.verify(); code != 0 {
			t.Fatalf("verify after reset: exit %d\n%s", code, out)
		}
		for tb, n := range before {
			if got := m.count(m.testDB, tb); got != n {
				t.Errorf("%s: %d rows after reset, %d after the first load", tb, got, n)
			}
		}
		pairs := checkMyAfterLoad(t, m)
		checkDomain(t, "surname", pairs["surname"])
	})

	t.Run("StreamAgreesWithLoad", func(t *testing.T) {
		sync := m.start("sync")
		m.exec(`
			UPDATE customers SET last_name = 'Johnson', email = CONCAT('moved', id, '@corp.example') WHERE id % 100 = 0;
			UPDATE customers SET tenant_id = 3 WHERE id = 4;
			UPDATE customers SET tenant_id = 1 WHERE id = 2;
			UPDATE customers SET status = 'legacy_gold', flags = '', perms = b'1111111111', wake = '-12:00:00.5' WHERE id = 6;
			INSERT INTO customers (id, tenant_id, first_name, last_name, email, status, profile, photo, created_at)
			  VALUES (18446744073709551615, 1, 'Ada-1', 'Smith 3', 'new1@corp.example', 'open',
			          '{"email": "user8@corp.example", "tier": "gold"}', x'00', '2025-01-01 00:00:00.000001');`,
			`BEGIN;
			 DELETE FROM accounts WHERE customer_id = 10;
			 UPDATE accounts SET holder_last_name = 'García', balance = balance + 1 WHERE customer_id = 11;
			 COMMIT;`,
			`ALTER TABLE accounts ADD COLUMN branch varchar(20) NULL`,
			`UPDATE accounts SET branch = 'north' WHERE customer_id = 13`,
			`INSERT INTO customers (id, tenant_id, status, created_at) VALUES (10002, 2, 'open', NOW(6))`)
		waitFor(t, time.Minute, "the streamed changes", sync, func() bool {
			return m.count(m.testDB, "customers WHERE id = 10002") == 1
		})
		if n := m.count(m.testDB, "accounts WHERE branch = 'north'"); n != 2 {
			t.Errorf("the column added mid-stream: %d target rows with it set, want 2", n)
		}
		sync.stop(t, 10*time.Second)
		if n := m.count(m.testDB, "customers WHERE id IN (2, 4)"); n != 1 {
			t.Errorf("rows moving in and out of the filter: %d of customers 2 (in) and 4 (out) in the target, want 1", n)
		}
		pairs := checkMyAfterLoad(t, m)
		for _, d := range []string{"given_name", "surname", "email"} {
			checkDomain(t, d, pairs[d])
		}
		if code, out := m.verify(); code != 0 {
			t.Errorf("verify after streaming: exit %d\n%s", code, out)
		}
	})
}
