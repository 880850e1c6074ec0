package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/understudy/understudy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// These tests run the CLI in-process against two real Postgres databases: the
// scenarios a user runs, from config file to replica.

const bankSchema = `
CREATE TYPE account_status AS ENUM ('open', 'frozen', 'closed', 'legacy_gold');
CREATE TABLE customers (
  id bigint PRIMARY KEY,
  tenant_id int NOT NULL,
  first_name text,
  last_name text,
  email text,
  ssn text,
  profile jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE accounts (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers(id),
  holder_last_name text,
  iban text,
  status account_status NOT NULL,
  balance numeric(14,2) NOT NULL
);
INSERT INTO customers (id, tenant_id, first_name, last_name, email, ssn, profile) VALUES
  (1, 1, 'Ada', 'Johnson', 'ada.johnson@corp.example', '123-45-6789', '{"email":"ada.johnson@corp.example","tier":"gold"}'),
  (2, 1, NULL, 'Johnson', 'bob@corp.example', '987-65-4321', '{"email":"bob@corp.example"}'),
  (3, 2, '', 'Müller-Lüdenscheidt', '', NULL, NULL),
  (4, 2, 'Zoë', NULL, 'zoe@corp.example', '111-22-3333', '{}'),
  (5, 3, 'Other', 'Tenant', 'other@corp.example', '000-11-2222', NULL);
INSERT INTO accounts (id, customer_id, holder_last_name, iban, status, balance) VALUES
  (10, 1, 'Johnson', 'DE89370400440532013000', 'open', 100.50),
  (11, 2, 'Johnson', 'DE89370400440532013001', 'legacy_gold', 0),
  (12, 3, 'Müller-Lüdenscheidt', 'GB29NWBK60161331926819', 'frozen', -12.25),
  (13, 5, 'Tenant', 'FR1420041010050500013M02606', 'closed', 7);
`

type bank struct {
	pg                 *testenv.PostgresServer
	prod, test, config string
}

func newBank(t *testing.T) *bank {
	t.Helper()
	pg := testenv.Postgres(t)
	b := &bank{pg: pg, prod: pg.NewDatabase(t), test: pg.NewDatabase(t)}
	pg.Exec(t, b.prod, bankSchema)
	dir := t.TempDir()
	b.config = filepath.Join(dir, "understudy.yaml")
	t.Setenv("UNDERSTUDY_SECRET", "e2e-secret-0123456789abcdef")
	t.Setenv("PROD_URL", b.prod)
	t.Setenv("TEST_URL", b.test)
	cfg := `
secret: ${UNDERSTUDY_SECRET}
metrics: off
pipelines:
  - name: bank
    source: ${PROD_URL}
    target: ${TEST_URL}
    tables: [public.customers, public.accounts]
    rules:
      public.customers:
        first_name: {replace: first_name, domain: given_name, scope: run}
        last_name:  {replace: last_name, domain: surname}
        email:      {replace: email, domain: email}
        ssn:        {constant: "000-00-0000"}
        profile:
          json:
            $.email: {replace: email, domain: email}
      public.accounts:
        holder_last_name: {replace: last_name, domain: surname}
        iban: hash
    where:
      public.customers: tenant_id in [1, 2]
`
	if err := os.WriteFile(b.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

// cli runs one understudy command in-process and returns its exit code and output.
func (b *bank) cli(ctx context.Context, args ...string) (int, string) {
	var out bytes.Buffer
	args = append(args, "--config", b.config)
	err := run(ctx, args, strings.NewReader(""), &out, &out)
	code := exitCode(err, &out)
	return code, out.String()
}

func query(t *testing.T, dsn, sql string, args ...any) [][]any {
	t.Helper()
	out, err := tryQuery(dsn, sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tryQuery(dsn, sql string, args ...any) ([][]any, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	var out [][]any
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// rowCount polls-friendly: -1 while the table does not exist yet.
func rowCount(dsn, sql string) int {
	rows, err := tryQuery(dsn, sql)
	if err != nil {
		return -1
	}
	return len(rows)
}

func TestLoadAnonymizesConsistentlyAndVerifies(t *testing.T) {
	b := newBank(t)
	ctx := context.Background()
	if code, out := b.cli(ctx, "load"); code != 0 {
		t.Fatalf("load exit %d:\n%s", code, out)
	}

	got := map[int64][]any{}
	for _, r := range query(t, b.test, `SELECT id, first_name, last_name, email, ssn, profile->>'email', tenant_id FROM customers`) {
		got[r[0].(int64)] = r[1:]
	}
	if len(got) != 4 {
		t.Fatalf("target has %d customers, want 4 (tenant 3 filtered out)", len(got))
	}
	if _, ok := got[5]; ok {
		t.Fatal("customer of tenant 3 reached the replica")
	}
	// NULL stays NULL, '' stays ''.
	if got[2][0] != nil || got[3][0] != "" || got[3][2] != "" || got[4][1] != nil || got[3][3] != nil {
		t.Fatalf("NULL/empty not preserved: %v", got)
	}
	// Consistent: both Johnsons map alike, and differ from production.
	if got[1][1] != got[2][1] || got[1][1] == "Johnson" || got[1][1] == nil {
		t.Fatalf("Johnson replaced inconsistently: %v vs %v", got[1][1], got[2][1])
	}
	// Injective: Müller-Lüdenscheidt gets a replacement of its own.
	if got[3][1] == got[1][1] {
		t.Fatal("two surnames share a replacement")
	}
	// Email in the column and inside the JSON document map the same way.
	if got[1][2] != got[1][4] || got[1][2] == "ada.johnson@corp.example" {
		t.Fatalf("email column %v vs profile email %v", got[1][2], got[1][4])
	}
	if got[1][3] != "000-00-0000" {
		t.Fatalf("ssn = %v, want the constant", got[1][3])
	}
	// Across tables: accounts.holder_last_name shares the surname domain.
	acc := query(t, b.test, `SELECT holder_last_name, iban, status::text, balance::text FROM accounts WHERE id = 10`)
	if acc[0][0] != got[1][1] {
		t.Fatalf("accounts.holder_last_name %v != customers.last_name %v for the same surname", acc[0][0], got[1][1])
	}
	if iban := acc[0][1].(string); iban == "DE89370400440532013000" || len(iban) != 22 {
		t.Fatalf("iban hash %q: must differ and keep the width", iban)
	}
	// The retired enum value and exact decimals survive.
	legacy := query(t, b.test, `SELECT status::text, balance::text FROM accounts WHERE id = 11`)
	if legacy[0][0] != "legacy_gold" || legacy[0][1] != "0.00" {
		t.Fatalf("account 11 = %v", legacy[0])
	}

	// first_name is run-scoped: another process cannot recompute it without a
	// configured run_id, so verify says it skips it instead of failing.
	if code, out := b.cli(ctx, "verify"); code != 0 || !strings.Contains(out, "not compared") || !strings.Contains(out, "public.customers.first_name") {
		t.Fatalf("verify after load exit %d:\n%s", code, out)
	}
	// A change behind understudy's back is found, and no value is printed.
	b.pg.Exec(t, b.test, `UPDATE accounts SET balance = 1 WHERE id = 12`)
	code, out := b.cli(ctx, "verify")
	if code != 1 || !strings.Contains(out, "public.accounts: DIFFERENT") {
		t.Fatalf("verify after tampering: exit %d\n%s", code, out)
	}
	if strings.Contains(out, "Johnson") || strings.Contains(out, "12.25") {
		t.Fatalf("verify printed a value:\n%s", out)
	}
	if code, out := b.cli(ctx, "load"); code != 0 || !strings.Contains(out, "already complete") {
		t.Fatalf("second load: exit %d\n%s", code, out)
	}

	// Erasure of one person's mapping: found once, then gone; the value is not echoed.
	code, out = b.cli(ctx, "mappings", "forget", "--domain", "surname", "--value", "Johnson")
	if code != 0 || !strings.Contains(out, "forgot 1 mapping") || strings.Contains(out, "Johnson") {
		t.Fatalf("mappings forget: exit %d\n%s", code, out)
	}
	// The value can come from stdin, out of shell history and ps.
	var stdinOut bytes.Buffer
	err := run(ctx, []string{"mappings", "forget", "--domain", "surname", "--value", "-", "--config", b.config}, strings.NewReader("Johnson\n"), &stdinOut, &stdinOut)
	if code := exitCode(err, &stdinOut); code != 0 || !strings.Contains(stdinOut.String(), "forgot 0 mapping") {
		t.Fatalf("second forget (value on stdin): exit %d\n%s", code, stdinOut.String())
	}
	if code, out := b.cli(ctx, "mappings", "forget", "--domain", "surname"); code != exitUsage {
		t.Fatalf("forget without --value: exit %d\n%s", code, out)
	}
}

func TestSyncStreamsResetRefusesWhileRunning(t *testing.T) {
	b := newBank(t)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var syncCode int
	var syncOut string
	wg.Add(1)
	go func() {
		defer wg.Done()
		syncCode, syncOut = b.cli(ctx, "sync")
	}()
	t.Cleanup(func() { stop(); wg.Wait() })

	waitFor(t, 30*time.Second, func() bool {
		return rowCount(b.test, `SELECT 1 FROM accounts WHERE id = 13`) == 1
	})
	b.pg.Exec(t, b.prod, `
		INSERT INTO customers (id, tenant_id, first_name, last_name, email) VALUES (6, 1, 'New', 'Johnson', 'new@corp.example');
		UPDATE customers SET email = 'ada@new.example' WHERE id = 1;
		DELETE FROM accounts WHERE id = 12;
		UPDATE customers SET tenant_id = 3 WHERE id = 4;`)
	waitFor(t, 30*time.Second, func() bool {
		return rowCount(b.test, `SELECT 1 FROM customers WHERE id = 6`) == 1 &&
			rowCount(b.test, `SELECT 1 FROM accounts WHERE id = 12`) == 0 &&
			rowCount(b.test, `SELECT 1 FROM customers WHERE id = 4`) == 0
	})
	rows := query(t, b.test, `SELECT c6.last_name, c1.last_name, c1.email FROM customers c6, customers c1 WHERE c6.id = 6 AND c1.id = 1`)
	if rows[0][0] != rows[0][1] {
		t.Fatalf("streamed Johnson %v != loaded Johnson %v", rows[0][0], rows[0][1])
	}
	if rows[0][2] == "ada@new.example" {
		t.Fatal("streamed email not anonymized")
	}

	if code, out := b.cli(context.Background(), "reset", "--yes"); code != exitConflict || !strings.Contains(out, "locked") {
		t.Fatalf("reset during sync: exit %d, want %d\n%s", code, exitConflict, out)
	}
	if code, out := b.cli(context.Background(), "status"); code != 0 || !strings.Contains(out, "streaming") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}

	stop()
	wg.Wait()
	if syncCode != 0 {
		t.Fatalf("sync stopped with exit %d:\n%s", syncCode, syncOut)
	}
	if code, out := b.cli(context.Background(), "verify"); code != 0 {
		t.Fatalf("verify after sync: exit %d\n%s", code, out)
	}

	if code, out := b.cli(context.Background(), "reset", "--dry-run"); code != 0 || !strings.Contains(out, "Dry run") {
		t.Fatalf("reset --dry-run: exit %d\n%s", code, out)
	}
	if code, out := b.cli(context.Background(), "reset"); code != exitUsage || !strings.Contains(out, "--yes") {
		t.Fatalf("reset without --yes and without a terminal: exit %d\n%s", code, out)
	}
	b.pg.Exec(t, b.test, `INSERT INTO accounts VALUES (99, 1, 'x', 'y', 'open', 1)`)
	if code, out := b.cli(context.Background(), "reset", "--yes"); code != 0 {
		t.Fatalf("reset: exit %d\n%s", code, out)
	}
	if n := query(t, b.test, `SELECT count(*) FROM accounts WHERE id = 99`)[0][0].(int64); n != 0 {
		t.Fatal("reset left a row that is not in production")
	}
	if code, out := b.cli(context.Background(), "verify"); code != 0 {
		t.Fatalf("verify after reset: exit %d\n%s", code, out)
	}
}

func TestTargetThatIsNotAReplicaIsRefused(t *testing.T) {
	b := newBank(t)
	b.pg.Exec(t, b.test, `CREATE TABLE precious (id int primary key); INSERT INTO precious VALUES (1)`)
	code, out := b.cli(context.Background(), "load")
	if code != 1 || !strings.Contains(out, "replica") {
		t.Fatalf("load into an unmarked database: exit %d\n%s", code, out)
	}
	if n := query(t, b.test, `SELECT count(*) FROM information_schema.tables WHERE table_name = 'customers'`)[0][0].(int64); n != 0 {
		t.Fatal("a table was created in a target that is not a replica")
	}
}

func TestConfigProblemsExitTwo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "understudy.yaml")
	os.WriteFile(path, []byte("secret: short\npipelines:\n  - name: Bad Name\n    tabels: []\n"), 0o600)
	var out bytes.Buffer
	code := exitCode(run(context.Background(), []string{"load", "--config", path}, nil, &out, &out), &out)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d\n%s", code, exitUsage, out.String())
	}
	for _, want := range []string{"understudy.yaml:3", "understudy.yaml:4", "tables"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not reached within %s", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSourceKindNotBuiltInSaysSo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "understudy.yaml")
	t.Setenv("UNDERSTUDY_SECRET", "e2e-secret-0123456789abcdef")
	os.WriteFile(path, []byte(`
secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: shop
    source: dynamodb://us-east-1/orders
    target: dynamodb://eu-west-1/orders
    tables: [orders]
`), 0o600)
	var out bytes.Buffer
	code := exitCode(run(context.Background(), []string{"load", "--config", path}, nil, &out, &out), &out)
	// Every source kind is built in now; a DynamoDB URL that names a table gets
	// the URL form in one line (the tables come from tables:).
	if code != exitFailure || !strings.Contains(out.String(), "the tables come from the pipeline's tables:") ||
		!strings.Contains(out.String(), "dynamodb://?region=REGION") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
}
