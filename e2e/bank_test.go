package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// bankSchema is a bank-like production schema with the odd data real production
// has: NULL and empty names, a retired enum value still in rows, unicode, large
// out-of-line TOAST text, jsonb holding PII, bytea, text[] and int[] arrays (with
// NULL and empty elements), a composite primary key and foreign keys.
const bankSchema = `
CREATE TYPE account_status AS ENUM ('open', 'frozen', 'closed', 'legacy_gold'); -- legacy_gold: retired, still in data
CREATE TABLE customers (
  id bigint PRIMARY KEY,
  tenant_id int NOT NULL,
  first_name text,
  last_name text,
  email text UNIQUE,
  phone text,
  ssn text,
  birth_date date,
  nicknames text[],
  lucky_numbers int[],
  profile jsonb,
  photo bytea,
  statement text,
  credit_score numeric(6,2),
  risk double precision,
  ip inet,
  external_id uuid,
  created_at timestamptz NOT NULL,
  updated_at timestamp
);
-- Out of line and uncompressed: the stream sends unchanged TOAST columns as "unchanged".
ALTER TABLE customers ALTER COLUMN statement SET STORAGE EXTERNAL;
CREATE TABLE accounts (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id),
  holder_last_name text,
  iban text NOT NULL,
  status account_status NOT NULL,
  balance numeric(14,2) NOT NULL,
  tags text[],
  opened_on date,
  pin_hash bytea
);
CREATE TABLE account_holders (
  account_id bigint NOT NULL REFERENCES accounts(id),
  customer_id bigint NOT NULL REFERENCES customers(id),
  role text NOT NULL,
  signatory_last_name text,
  contact_email text,
  PRIMARY KEY (account_id, customer_id)
);

-- 3000 customers over three tenants. Surnames repeat (consistency is visible) and
-- include dictionary names, unicode and apostrophes.
INSERT INTO customers
SELECT i, 1 + i % 3,
  CASE WHEN i % 50 = 0 THEN NULL WHEN i % 50 = 1 THEN ''
       ELSE (ARRAY['Ada','Bob','Zoë','José','Łukasz','李','Amélie','Seán'])[1 + i % 8] || CASE WHEN i % 3 = 0 THEN '' ELSE '-' || (i % 41) END END,
  CASE WHEN i % 40 = 0 THEN NULL WHEN i % 40 = 1 THEN ''
       ELSE (ARRAY['Johnson','Müller-Lüdenscheidt','O''Connor','Nguyễn','Smith','García','Øvergård','佐藤'])[1 + i % 8] || CASE WHEN i % 5 = 0 THEN '' ELSE ' ' || (i % 97) END END,
  CASE WHEN i = 7 THEN '' WHEN i % 30 = 0 THEN NULL ELSE 'user' || i || '@corp.example' END,
  CASE WHEN i % 9 = 0 THEN NULL ELSE '+1-555-' || lpad((i * 7 % 10000)::text, 4, '0') END,
  CASE WHEN i % 11 = 0 THEN NULL ELSE lpad((i * 7919 % 1000)::text, 3, '0') || '-' || lpad((i % 100)::text, 2, '0') || '-' || lpad(i::text, 4, '0') END,
  date '1940-01-01' + (i * 37 % 25000),
  CASE WHEN i % 5 = 0 THEN NULL WHEN i % 5 = 1 THEN '{}'::text[]
       WHEN i % 5 = 2 THEN ARRAY['Ada-' || (i % 13), NULL, '']
       ELSE ARRAY['Bobby', 'Zoë-' || (i % 17)] END,
  CASE WHEN i % 4 = 0 THEN NULL ELSE ARRAY[i, -i, NULL, 2147483647] END,
  CASE WHEN i % 6 = 0 THEN NULL WHEN i % 6 = 1 THEN '{}'::jsonb
       ELSE jsonb_build_object(
         'email', CASE WHEN i = 7 THEN '' WHEN i % 30 = 0 THEN NULL ELSE 'user' || i || '@corp.example' END,
         'tier', (ARRAY['gold','silver','legacy_platinum'])[1 + i % 3],
         'limits', jsonb_build_array(i, i * 1.5, true, null),
         'prefs', jsonb_build_object('lang', 'de-AT', 'greeting', 'Grüß Gott ' || i),
         'contacts', jsonb_build_array(
           jsonb_build_object('relation', 'spouse', 'last_name', (ARRAY['Johnson','Smith','Nguyễn'])[1 + i % 3] || ' ' || (i % 97)),
           jsonb_build_object('relation', 'parent', 'last_name', NULL)))
  END,
  CASE WHEN i % 7 = 0 THEN NULL WHEN i % 7 = 1 THEN ''::bytea ELSE decode(md5(i::text), 'hex') || '\x00ff00'::bytea END,
  CASE WHEN i % 100 = 0 THEN 'Kontoauszug ü€ ' || (SELECT string_agg(md5(i::text || '/' || j), '') FROM generate_series(1, 400) j)
       WHEN i % 13 = 0 THEN NULL ELSE 'short statement ' || i END,
  CASE WHEN i % 8 = 0 THEN NULL ELSE (i % 900) + 0.25 END,
  CASE WHEN i % 10 = 0 THEN 'NaN'::float8 ELSE i / 7.0 END,
  ('10.' || (i % 256) || '.' || (i % 199) || '.' || (i % 251))::inet,
  md5('ext' || i)::uuid,
  timestamptz '2020-01-01 00:00:00+00' + i * interval '37 minutes 1.234567 seconds',
  CASE WHEN i % 3 = 0 THEN NULL ELSE timestamp '2024-02-29 23:59:59.999999' - i * interval '1 hour' END
FROM generate_series(1, 3000) i;

-- Hand-written odd rows: only whitespace, a name equal to another's e-mail, emoji.
INSERT INTO customers (id, tenant_id, first_name, last_name, email, profile, created_at, nicknames) VALUES
  (9001, 1, ' ', 'Johnson', 'odd.one@corp.example', '{"email": "odd.one@corp.example", "contacts": []}', now(), ARRAY['Ada-1']),
  (9002, 2, '🙂', 'de la Cruz 🙂', 'emoji🙂@corp.example', '{"email": ""}', now(), NULL),
  (9003, 3, 'Filtered', 'Out', 'filtered@corp.example', NULL, now(), NULL);

INSERT INTO accounts
SELECT i, c.id, c.last_name,
  'DE' || lpad((i * 104729 % 100)::text, 2, '0') || lpad((i * 2654435761 % 1000000000000000000)::text, 18, '0'),
  (CASE WHEN i % 10 = 0 THEN 'legacy_gold' WHEN i % 10 = 1 THEN 'frozen' WHEN i % 10 = 2 THEN 'closed' ELSE 'open' END)::account_status,
  round(((i * 7919) % 2000000 - 1000000) / 100.0, 2),
  CASE WHEN i % 4 = 0 THEN NULL WHEN i % 4 = 1 THEN '{}'::text[] ELSE ARRAY['vip', 'ü-tag', NULL, 'tag ' || (i % 5)] END,
  date '2001-01-01' + i,
  CASE WHEN i % 5 = 0 THEN NULL ELSE sha256(i::text::bytea) END
FROM generate_series(1, 4000) i JOIN customers c ON c.id = 1 + (i % 3000);

INSERT INTO account_holders
SELECT a.id, a.customer_id, 'owner', c.last_name, c.email
FROM accounts a JOIN customers c ON c.id = a.customer_id;
INSERT INTO account_holders
SELECT a.id, c.id, 'co-signer', c.last_name, CASE WHEN a.id % 2 = 0 THEN NULL ELSE c.email END
FROM accounts a JOIN customers c ON c.id = 1 + (a.customer_id + 1) % 3000
WHERE a.id % 3 = 0;
ANALYZE;
`

const bankPipeline = `
  - name: bank
    source: ${PROD_URL}
    target: ${TEST_URL}
    tables: [public.customers, public.accounts, public.account_holders]
    rules:
      public.customers:
        first_name: {replace: first_name, domain: given_name}
        nicknames:  {replace: first_name, domain: given_name}
        last_name:  {replace: last_name, domain: surname}
        email:      {replace: email, domain: email}
        phone:      hash
        ssn:        {constant: "000-00-0000"}
        profile:
          json:
            $.email: {replace: email, domain: email}
            $.contacts[*].last_name: {replace: last_name, domain: surname}
      public.accounts:
        holder_last_name: {replace: last_name, domain: surname}
        iban: hash
      public.account_holders:
        signatory_last_name: {replace: last_name, domain: surname}
        contact_email: {replace: email, domain: email}
    where:
      public.customers: tenant_id in [1, 2]
`

// tableCheck says how to compare one table of production with its replica: by
// key, every kept column must be identical; every sensitive value is collected
// for the per-domain checks.
type tableCheck struct {
	table  string
	key    string // SQL expression rendering the key as text
	where  string // the pipeline's row filter, as SQL on production
	keep   []string
	domain map[string]string // scalar sensitive column → domain
}

var bankChecks = []tableCheck{
	{
		table: "customers", key: "id::text", where: "tenant_id IN (1, 2)",
		keep: []string{"tenant_id", "birth_date", "lucky_numbers", "photo", "statement", "credit_score", "risk",
			"ip", "external_id", "created_at", "updated_at",
			// the shape of the sensitive arrays and documents, and their non-PII parts
			"nicknames IS NULL", "cardinality(nicknames)", "array_positions(nicknames, NULL)",
			"jsonb_typeof(profile)", "profile - 'email' - 'contacts'", "jsonb_typeof(profile->'email')",
			"jsonb_path_query_array(profile, '$.contacts[*].relation')", "jsonb_array_length(profile->'contacts')",
			"length(phone)", "regexp_replace(regexp_replace(phone, '[0-9]', '9', 'g'), '[A-Za-z]', 'A', 'g')", "ssn IS NULL"},
		domain: map[string]string{"first_name": "given_name", "last_name": "surname", "email": "email",
			"phone": "hash:phone", "profile->>'email'": "email"},
	},
	{
		table: "accounts", key: "id::text",
		keep: []string{"customer_id", "status", "balance", "tags", "opened_on", "pin_hash",
			"length(iban)", "regexp_replace(regexp_replace(iban, '[0-9]', '9', 'g'), '[A-Z]', 'A', 'g')"},
		domain: map[string]string{"holder_last_name": "surname", "iban": "hash:iban"},
	},
	{
		table: "account_holders", key: "account_id || '/' || customer_id",
		keep:   []string{"role"},
		domain: map[string]string{"signatory_last_name": "surname", "contact_email": "email"},
	},
}

// elementChecks collect sensitive values inside arrays and JSON arrays, keyed by
// the row key plus the element's position.
var elementChecks = []struct {
	table, where, sql, domain string
}{
	{"customers", "tenant_id IN (1, 2)",
		`SELECT id || '#' || o, n FROM customers, unnest(nicknames) WITH ORDINALITY u(n, o)`, "given_name"},
	{"customers", "tenant_id IN (1, 2)",
		`SELECT id || '#' || o, c->>'last_name' FROM customers, jsonb_array_elements(CASE jsonb_typeof(profile->'contacts') WHEN 'array' THEN profile->'contacts' END) WITH ORDINALITY e(c, o)`, "surname"},
}

// pair is one sensitive value: production's and the replica's, at one place.
type pair struct {
	where      string
	prod, repl *string
}

// checkAfterLoad compares production with its replica, column by column, and
// returns the sensitive pairs per domain.
func checkAfterLoad(t *testing.T, e *env) map[string][]pair {
	t.Helper()
	pairs := map[string][]pair{}
	for _, c := range bankChecks {
		var cols []string
		var sensitive []string
		cols = append(cols, c.keep...)
		for col := range c.domain {
			sensitive = append(sensitive, col)
		}
		cols = append(cols, sensitive...)
		sel := "SELECT " + c.key + ", " + strings.Join(textCols(cols), ", ") + " FROM " + c.table
		prodSQL := sel
		if c.where != "" {
			prodSQL += " WHERE " + c.where
		}
		prod := byKey(query(t, e.prod, prodSQL))
		repl := byKey(query(t, e.test, sel))
		if len(prod) != len(repl) {
			t.Errorf("%s: production has %d rows after the filter, the replica %d", c.table, len(prod), len(repl))
		}
		mismatches := 0
		for k, p := range prod {
			r, ok := repl[k]
			if !ok {
				t.Errorf("%s: key %s missing from the replica", c.table, k)
				continue
			}
			for i, col := range c.keep {
				if str(p[i]) != str(r[i]) {
					mismatches++
					if mismatches <= 10 {
						t.Errorf("%s key %s: kept column %s differs: production %.80q, replica %.80q", c.table, k, col, str(p[i]), str(r[i]))
					}
				}
			}
			for j, col := range sensitive {
				i := len(c.keep) + j
				d := c.domain[col]
				pairs[d] = append(pairs[d], pair{where: c.table + "." + col + " key " + k, prod: p[i], repl: r[i]})
			}
		}
		for k := range repl {
			if _, ok := prod[k]; !ok {
				t.Errorf("%s: replica has key %s that production (after the filter) does not", c.table, k)
			}
		}
	}
	for _, ec := range elementChecks {
		prod := byKey(query(t, e.prod, ec.sql+" WHERE "+ec.where))
		repl := byKey(query(t, e.test, ec.sql))
		if len(prod) != len(repl) {
			t.Errorf("%s elements (%s): production %d, replica %d", ec.table, ec.domain, len(prod), len(repl))
		}
		for k, p := range prod {
			pairs[ec.domain] = append(pairs[ec.domain], pair{where: ec.table + " element " + k, prod: p[0], repl: repl[k][0]})
		}
	}
	return pairs
}

// textCols renders each column expression as text, so every type (bytea, arrays,
// enums, numeric, timestamps in UTC, json) compares by its canonical rendering.
func textCols(cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = "(" + c + ")::text"
	}
	return out
}

func byKey(rows [][]*string) map[string][]*string {
	m := make(map[string][]*string, len(rows))
	for _, r := range rows {
		m[*r[0]] = r[1:]
	}
	return m
}

// checkDomain asserts, for one domain: NULL stays NULL, ” stays ”, every other
// value is replaced (never equal to production's), consistently (one production
// value → one replacement, across tables) and injectively (two production values
// never share one). Hash domains ("hash:…") are keyed hashes, not mappings: they
// are consistent, but two values may collide, so injectivity is not checked.
func checkDomain(t *testing.T, domain string, pairs []pair) {
	injective := !strings.HasPrefix(domain, "hash:")
	t.Helper()
	fwd := map[string]string{}
	rev := map[string]string{}
	errs := 0
	fail := func(format string, args ...any) {
		errs++
		if errs <= 10 {
			t.Errorf("domain %s: "+format, append([]any{domain}, args...)...)
		}
	}
	replaced := 0
	for _, p := range pairs {
		switch {
		case p.prod == nil:
			if p.repl != nil {
				fail("%s: NULL became %q", p.where, *p.repl)
			}
			continue
		case *p.prod == "":
			if p.repl == nil || *p.repl != "" {
				fail("%s: '' became %s", p.where, str(p.repl))
			}
			continue
		case p.repl == nil:
			fail("%s: a value became NULL", p.where)
			continue
		case *p.repl == *p.prod:
			fail("%s: the production value %q was kept", p.where, *p.prod)
		}
		replaced++
		if prev, ok := fwd[*p.prod]; ok && prev != *p.repl {
			fail("%s: inconsistent: %q → %q here, %q elsewhere", p.where, *p.prod, *p.repl, prev)
		}
		fwd[*p.prod] = *p.repl
		if prev, ok := rev[*p.repl]; injective && ok && prev != *p.prod {
			fail("%s: not injective: %q and %q both → %q", p.where, prev, *p.prod, *p.repl)
		}
		rev[*p.repl] = *p.prod
	}
	if replaced == 0 {
		t.Errorf("domain %s: no value was replaced at all (the check compared nothing)", domain)
	}
	t.Logf("domain %s: %d values, %d distinct, checked", domain, replaced, len(fwd))
}

func newBank(t *testing.T) *env {
	return newEnv(t, bankSchema, "", bankPipeline)
}

// TestBankLoadThenDamageAndReset loads the bank schema and checks the replica
// column by column; then damages the replica, which verify must find, and resets.
func TestBankLoadThenDamageAndReset(t *testing.T) {
	e := newBank(t)
	out := e.must("load")
	if !strings.Contains(out, "initial load complete") {
		t.Fatalf("load output:\n%s", out)
	}

	t.Run("AfterLoad", func(t *testing.T) {
		pairs := checkAfterLoad(t, e)
		for _, d := range []string{"given_name", "surname", "email", "hash:phone", "hash:iban"} {
			checkDomain(t, d, pairs[d])
		}
		// Domains are shared: the same surname maps alike in all four places
		// (checkDomain's consistency spans them); make sure all four contributed.
		seen := map[string]bool{}
		for _, p := range pairs["surname"] {
			seen[strings.SplitN(p.where, " ", 2)[0]] = true
		}
		for _, w := range []string{"customers.last_name", "accounts.holder_last_name", "account_holders.signatory_last_name", "customers"} {
			if !seen[w] {
				t.Errorf("no surname came from %s (saw %v)", w, seen)
			}
		}
		// Constants, and the shapes replacements keep.
		for _, r := range query(t, e.test, `SELECT id, ssn FROM customers WHERE ssn IS NOT NULL`) {
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
		for _, p := range pairs["given_name"] {
			if p.repl != nil && *p.repl != "" && (!utf8.ValidString(*p.repl) || !strings.ContainsFunc(*p.repl, unicode.IsLetter)) {
				t.Errorf("%s: replacement %q is not a name", p.where, *p.repl)
			}
		}
		// The retired enum value and large TOAST text made it, byte for byte
		// (the kept-column comparison covers them; these guard the data itself).
		if n := scalar(t, e.test, `SELECT count(*) FROM accounts WHERE status = 'legacy_gold'`); n != "400" {
			t.Errorf("replica has %s legacy_gold accounts, want 400", n)
		}
		if n := scalar(t, e.test, `SELECT count(*) FROM customers WHERE length(statement) > 8192`); n == "0" {
			t.Error("no large statement text reached the replica")
		}
		if n := scalar(t, e.test, `SELECT count(*) FROM customers WHERE tenant_id = 3`); n != "0" {
			t.Errorf("%s customers of the filtered tenant reached the replica", n)
		}
		if code, out := e.verify(); code != 0 {
			t.Errorf("verify after load: exit %d\n%s", code, out)
		}
	})

	t.Run("VerifyDetectsDamageResetRestores", func(t *testing.T) {
		before := map[string]int64{}
		for _, tb := range []string{"customers", "accounts", "account_holders"} {
			before[tb] = count(e.test, tb)
		}
		e.testPG.Exec(t, e.test, `
			DELETE FROM account_holders WHERE account_id % 7 = 0;
			UPDATE accounts SET balance = balance + 0.01 WHERE id = 42;
			INSERT INTO customers (id, tenant_id, first_name, created_at) VALUES (777777, 1, 'Stray', now());`)
		code, out := e.verify()
		if code != 1 {
			t.Fatalf("verify of a damaged replica: exit %d, want 1\n%s", code, out)
		}
		for _, tb := range []string{"customers", "accounts", "account_holders"} {
			if !regexp.MustCompile(`public\.` + tb + `: DIFFERENT`).MatchString(out) {
				t.Errorf("verify does not name public.%s as different:\n%s", tb, out)
			}
		}
		if strings.Contains(out, "Stray") || strings.Contains(out, "corp.example") {
			t.Errorf("verify printed a row value:\n%s", out)
		}

		out = e.must("reset", "--yes")
		if !strings.Contains(out, "reset done") {
			t.Errorf("reset output:\n%s", out)
		}
		if code, out := e.verify(); code != 0 {
			t.Fatalf("verify after reset: exit %d\n%s", code, out)
		}
		for tb, n := range before {
			if got := count(e.test, tb); got != n {
				t.Errorf("%s: %d rows after reset, %d after the first load", tb, got, n)
			}
		}
		if n := scalar(t, e.test, `SELECT count(*) FROM customers WHERE id = 777777`); n != "0" {
			t.Error("reset kept the stray row")
		}
		// The reloaded replica equals the first one, value for value: the
		// mappings are permanent, so checkAfterLoad's pairs are the same.
		pairs := checkAfterLoad(t, e)
		checkDomain(t, "surname", pairs["surname"])
	})

	// Streamed changes meet loaded rows: replacements must agree with the
	// snapshot's, unchanged TOAST text must survive updates of other columns, and
	// rows moving in and out of the filtered subset must follow.
	t.Run("StreamAgreesWithLoad", func(t *testing.T) {
		sync := e.start("sync")
		e.prodPG.Exec(t, e.prod, `
			UPDATE customers SET last_name = 'Johnson', email = 'moved' || id || '@corp.example' WHERE id % 100 = 0;
			UPDATE customers SET tenant_id = 3 WHERE id = 4;
			UPDATE customers SET tenant_id = 1 WHERE id = 2;
			INSERT INTO customers (id, tenant_id, first_name, last_name, email, nicknames, profile, statement, created_at)
			  VALUES (10001, 1, 'Ada-1', 'Smith 3', 'new1@corp.example', ARRAY['Bobby', NULL, ''],
			          '{"email": "user8@corp.example", "contacts": [{"relation": "spouse", "last_name": "Johnson 8"}]}',
			          repeat('long text ', 2000), now());`,
			`BEGIN;
			 DELETE FROM account_holders WHERE account_id = 9;
			 UPDATE account_holders SET role = 'former', signatory_last_name = 'García' WHERE account_id = 12;
			 UPDATE accounts SET status = 'legacy_gold', tags = ARRAY['x', NULL] WHERE id = 5;
			 UPDATE customers SET profile = jsonb_set(profile, '{contacts,0,last_name}', '"Nguyễn 5"') WHERE id = 10;
			 COMMIT;`,
			`INSERT INTO customers (id, tenant_id, created_at) VALUES (10002, 2, now())`)
		waitFor(t, time.Minute, "the streamed changes", sync, func() bool {
			return count(e.test, "customers WHERE id = 10002") == 1
		})
		sync.stop(t, 10*time.Second)
		if n := count(e.test, "customers WHERE id IN (2, 4)"); n != 1 {
			t.Errorf("rows moving in and out of the filter: %d of customers 2 (in) and 4 (out) in the target, want 1", n)
		}
		pairs := checkAfterLoad(t, e)
		for _, d := range []string{"given_name", "surname", "email"} {
			checkDomain(t, d, pairs[d])
		}
		if code, out := e.verify(); code != 0 {
			t.Errorf("verify after streaming: exit %d\n%s", code, out)
		}
	})
}
