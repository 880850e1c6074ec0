package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/understudy/understudy/testenv"
)

// The CLI in-process between two real MariaDB servers (production and test): load, verify, sync with
// streamed inserts, updates, deletes and an ALTER TABLE mid-stream, verify again.

const mysqlBankSchema = `SET NAMES utf8mb4;
CREATE TABLE customers (
  id int unsigned NOT NULL PRIMARY KEY,
  tenant_id int NOT NULL,
  first_name varchar(80),
  last_name varchar(80),
  email varchar(120),
  status enum('open','frozen','closed','legacy_gold') NOT NULL,
  flags set('vip','staff','test'),
  profile json,
  photo blob,
  active bit(1),
  created_at datetime(6) NOT NULL
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE accounts (
  customer_id int unsigned NOT NULL,
  seq smallint NOT NULL,
  holder_last_name varchar(80),
  iban varchar(40),
  balance decimal(14,2) NOT NULL,
  PRIMARY KEY (customer_id, seq)
) DEFAULT CHARSET=utf8mb4;
INSERT INTO customers VALUES
  (1, 1, 'Ada', 'Johnson', 'ada.johnson@corp.example', 'open', 'vip', '{"email":"ada.johnson@corp.example","tier":"gold"}', x'00FF', b'1', '2024-02-29 12:30:00.123456'),
  (2, 1, NULL, 'Johnson', 'bob@corp.example', 'legacy_gold', '', NULL, NULL, b'0', '2020-01-01 00:00:00'),
  (3, 2, '', 'Müller-Lüdenscheidt', '', 'frozen', 'staff,test', '{}', '', NULL, '2021-06-30 23:59:59.5'),
  (4, 3, 'Zoë', NULL, 'zoe@corp.example', 'closed', NULL, '[1,2]', NULL, b'1', '2022-02-02 02:02:02');
INSERT INTO accounts VALUES
  (1, 1, 'Johnson', 'DE89370400440532013000', 100.50),
  (1, 2, 'Johnson', 'DE89370400440532013001', 0),
  (3, 1, 'Müller-Lüdenscheidt', 'GB29NWBK60161331926819', -12.25);`

type mysqlBank struct {
	my, tgt            *testenv.MariaDBServer // production, test
	prod, test, config string
}

func newMySQLBank(t *testing.T) *mysqlBank {
	t.Helper()
	my, tgt := testenv.MariaDB(t), testenv.MariaDBTarget(t)
	b := &mysqlBank{my: my, tgt: tgt, prod: my.NewDatabaseName(t), test: tgt.NewDatabaseName(t)}
	my.Exec(t, my.DSN(b.prod), mysqlBankSchema)
	dir := t.TempDir()
	b.config = filepath.Join(dir, "understudy.yaml")
	t.Setenv("UNDERSTUDY_SECRET", "e2e-secret-0123456789abcdef")
	t.Setenv("PROD_URL", my.URL(b.prod))
	t.Setenv("TEST_URL", tgt.URL(b.test))
	cfg := strings.ReplaceAll(`
secret: ${UNDERSTUDY_SECRET}
metrics: off
pipelines:
  - name: mybank
    source: ${PROD_URL}
    target: ${TEST_URL}
    tables: [SRCDB.customers, SRCDB.accounts]
    rules:
      SRCDB.customers:
        first_name: {replace: first_name, domain: given_name}
        last_name:  {replace: last_name, domain: surname}
        email:      {replace: email, domain: email}
        profile:
          json:
            $.email: {replace: email, domain: email}
      SRCDB.accounts:
        holder_last_name: {replace: last_name, domain: surname}
        iban: hash
`, "SRCDB", b.prod)
	if err := os.WriteFile(b.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *mysqlBank) cli(ctx context.Context, args ...string) (int, string) {
	var out bytes.Buffer
	args = append(args, "--config", b.config)
	err := run(ctx, args, strings.NewReader(""), &out, &out)
	return exitCode(err, &out), out.String()
}

// count returns the number of rows sql selects in the test database, -1 on error
// (the table does not exist yet).
func (b *mysqlBank) count(query string) int {
	db, err := sql.Open("mysql", b.tgt.DSN(b.test))
	if err != nil {
		return -1
	}
	defer db.Close()
	rows, err := db.Query(query)
	if err != nil {
		return -1
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n
}

func TestMySQLLoadSyncVerify(t *testing.T) {
	b := newMySQLBank(t)
	ctx := context.Background()
	if code, out := b.cli(ctx, "load"); code != 0 {
		t.Fatalf("load: exit %d\n%s", code, out)
	}
	got := b.tgt.Query(t, b.tgt.DSN(b.test), "SELECT id, COALESCE(first_name,'<null>'), COALESCE(last_name,'<null>'), email, status, COALESCE(flags,'<null>'), HEX(photo), active+0, created_at FROM customers ORDER BY id")
	lines := strings.Split(got, "\n")
	if len(lines) != 4 {
		t.Fatalf("target customers:\n%s", got)
	}
	for _, plain := range []string{"Johnson", "ada.johnson@corp.example", "Müller", "bob@corp.example"} {
		if strings.Contains(got, plain) {
			t.Errorf("target holds production value %q:\n%s", plain, got)
		}
	}
	f1, f2, f3 := strings.Split(lines[0], "\t"), strings.Split(lines[1], "\t"), strings.Split(lines[2], "\t")
	if f1[2] != f2[2] {
		t.Errorf("Johnson replaced differently: %q vs %q", f1[2], f2[2])
	}
	if f2[1] != "<null>" || f3[1] != "" || f3[3] != "" {
		t.Errorf("NULL and empty names must survive: %q %q %q", f2[1], f3[1], f3[3])
	}
	if f2[4] != "legacy_gold" || f3[5] != "staff,test" || f1[6] != "00FF" || f1[7] != "1" || f1[8] != "2024-02-29 12:30:00.123456" {
		t.Errorf("kept columns changed: %q", lines[:3])
	}
	if code, out := b.cli(ctx, "verify"); code != 0 {
		t.Fatalf("verify after load: exit %d\n%s", code, out)
	}

	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var syncCode int
	var syncOut string
	wg.Add(1)
	go func() {
		defer wg.Done()
		syncCode, syncOut = b.cli(sctx, "sync")
	}()
	t.Cleanup(func() { stop(); wg.Wait() })

	b.my.Exec(t, b.my.DSN(b.prod), `SET NAMES utf8mb4;
		INSERT INTO customers VALUES (5, 1, 'New', 'Johnson', 'new@corp.example', 'open', 'vip,staff', '{"email":"new@corp.example"}', x'01', b'1', '2025-01-01 00:00:00.000001');
		UPDATE customers SET email = 'ada@new.example', status = 'frozen' WHERE id = 1;
		DELETE FROM accounts WHERE customer_id = 1 AND seq = 2;
		UPDATE accounts SET balance = balance + 1 WHERE customer_id = 3;`)
	waitFor(t, 30*time.Second, func() bool {
		return b.count("SELECT 1 FROM customers WHERE id = 5") == 1 &&
			b.count("SELECT 1 FROM accounts WHERE customer_id = 1 AND seq = 2") == 0 &&
			b.count("SELECT 1 FROM customers WHERE id = 1 AND status = 'frozen'") == 1
	})
	got = b.tgt.Query(t, b.tgt.DSN(b.test), "SELECT last_name, email FROM customers WHERE id IN (1, 5) ORDER BY id")
	rows := strings.Split(got, "\n")
	if strings.Split(rows[0], "\t")[0] != strings.Split(rows[1], "\t")[0] {
		t.Errorf("streamed Johnson differs from loaded Johnson:\n%s", got)
	}
	if strings.Contains(got, "ada@new.example") || strings.Contains(got, "new@corp.example") {
		t.Errorf("streamed email not anonymized:\n%s", got)
	}

	// A column added in production reaches the target, and rows written with it.
	b.my.Exec(t, b.my.DSN(b.prod), `ALTER TABLE customers ADD COLUMN nickname varchar(40) NULL`,
		`INSERT INTO customers (id, tenant_id, last_name, status, created_at, nickname) VALUES (6, 1, 'Late', 'open', '2025-02-02 00:00:00', 'nick')`)
	waitFor(t, 30*time.Second, func() bool {
		return b.count("SELECT 1 FROM customers WHERE id = 6 AND nickname = 'nick'") == 1
	})

	stop()
	wg.Wait()
	if syncCode != 0 {
		t.Fatalf("sync stopped with exit %d:\n%s", syncCode, syncOut)
	}
	if code, out := b.cli(ctx, "verify"); code != 0 {
		t.Fatalf("verify after sync: exit %d\n%s", code, out)
	}
}
