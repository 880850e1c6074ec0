package e2e

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/testenv"
)

// fixRe is the fix the refusal must name.
var fixRe = regexp.MustCompile(`ALTER TABLE "?public"?\."?pgbench_history"? ADD PRIMARY KEY`)

const pgbenchPath = "/usr/lib/postgresql/15/bin/pgbench"

// pgbench runs pgbench against the database of dsn.
func pgbench(ctx context.Context, pg *testenv.PostgresServer, dsn string, args ...string) *exec.Cmd {
	u, _ := url.Parse(dsn)
	db := strings.TrimPrefix(u.Path, "/")
	cmd := exec.CommandContext(ctx, pgbenchPath, append(append([]string{"-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", "postgres"}, args...), db)...)
	cmd.Env = append(os.Environ(), "PGAPPNAME=e2e-pgbench")
	return cmd
}

// writeConfig replaces the env's config file.
func (e *env) writeConfig(top, pipelines string) {
	e.t.Helper()
	cfg := "secret: ${UNDERSTUDY_SECRET}\nmetrics: off\n" + top + "pipelines:\n" + pipelines
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

const pgbenchPipeline = `
  - name: bench
    source: ${PROD_URL}
    target: ${TEST_URL}
    tables: [%s]
    rules:
      public.pgbench_accounts:
        filler: hash
      public.pgbench_tellers:
        filler: {replace: format, domain: teller_filler}
`

// pgbenchFingerprint aggregates what the rules keep in the three keyed tables.
const pgbenchFingerprint = `SELECT
  (SELECT count(*) || '/' || sum(aid) || '/' || sum(abalance) || '/' || sum(bid) || '/' || sum(length(filler)) FROM pgbench_accounts),
  (SELECT count(*) || '/' || sum(bbalance) FROM pgbench_branches),
  (SELECT count(*) || '/' || sum(tbalance) || '/' || count(filler) FROM pgbench_tellers)`

// TestSyncUnderPgbench streams a pgbench workload nobody here wrote (plus targeted
// updates, deletes and a large transaction) and checks that the replica converges.
// Mappings live in Redis here, so verify can run while sync does. pgbench_history
// has no primary key: selecting it must fail with one clear line.
func TestSyncUnderPgbench(t *testing.T) {
	if _, err := os.Stat(pgbenchPath); err != nil {
		if testenv.InCI() {
			t.Fatalf("pgbench missing (CI=true): %v", err)
		}
		t.Skipf("pgbench missing: %v", err)
	}
	e := newEnv(t, "", "", "")
	ctx := context.Background()
	if out, err := pgbench(ctx, e.prodPG, e.prod, "-i", "-s", "2", "-q").CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	redisURL := testenv.Redis(t).URL(t)
	top := "mappings: " + redisURL + "\n"

	t.Run("TableWithoutKeyIsRefused", func(t *testing.T) {
		e.writeConfig(top, strings.Replace(pgbenchPipeline, "%s",
			"public.pgbench_accounts, public.pgbench_branches, public.pgbench_tellers, public.pgbench_history", 1))
		for _, cmd := range []string{"load", "sync"} {
			code, out, errOut := e.run(cmd)
			if code == 0 {
				t.Fatalf("%s with pgbench_history selected: exit 0\n%s%s", cmd, out, errOut)
			}
			var lines []string
			for _, l := range strings.Split(errOut, "\n") {
				if strings.Contains(l, "pgbench_history") {
					lines = append(lines, l)
				}
			}
			if len(lines) != 1 || !strings.Contains(lines[0], "public.pgbench_history has no primary key") ||
				!fixRe.MatchString(lines[0]) {
				t.Errorf("%s: want one line naming public.pgbench_history and the fix (ADD PRIMARY KEY), got:\n%s", cmd, errOut)
			}
			for _, other := range []string{"pgbench_accounts", "pgbench_branches", "pgbench_tellers"} {
				if strings.Contains(errOut, other) {
					t.Errorf("%s: the error also blames %s, which has a key:\n%s", cmd, other, errOut)
				}
			}
		}
		if n := scalar(t, e.test, `SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'pgbench%'`); n != "0" {
			t.Errorf("a refused pipeline created %s table(s) in the target", n)
		}
	})

	e.writeConfig(top, strings.Replace(pgbenchPipeline, "%s",
		"public.pgbench_accounts, public.pgbench_branches, public.pgbench_tellers", 1))
	sync := e.start("sync")
	waitFor(t, 2*time.Minute, "initial load of 200k pgbench accounts", sync, func() bool {
		return count(e.test, "pgbench_accounts") == 200_000 && count(e.test, "pgbench_tellers") == 20
	})

	// pgbench's TPC-B-like transactions, and beside them what pgbench does not do:
	// deletes, key-range updates, and one transaction of 20k inserts.
	start := time.Now()
	bench := pgbench(ctx, e.prodPG, e.prod, "-c", "4", "-j", "2", "-T", "10", "-n")
	var benchOut strings.Builder
	bench.Stdout, bench.Stderr = &benchOut, &benchOut
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	benchDone := make(chan error, 1)
	go func() { benchDone <- bench.Wait() }()
	targeted := []string{
		`UPDATE pgbench_accounts SET filler = 'changed ' || aid WHERE aid % 1000 = 1`,
		`DELETE FROM pgbench_accounts WHERE aid BETWEEN 150000 AND 150999`,
		`INSERT INTO pgbench_accounts (aid, bid, abalance, filler) SELECT g, 1 + g % 2, g % 777, 'bulk' FROM generate_series(300001, 320000) g`,
		`UPDATE pgbench_tellers SET filler = 'teller ' || tid WHERE tid % 2 = 0`,
		`DELETE FROM pgbench_accounts WHERE aid > 319000`,
		`UPDATE pgbench_accounts SET abalance = -abalance, bid = 3 - bid WHERE aid BETWEEN 300001 AND 300500`,
	}
	for _, q := range targeted {
		e.prodPG.Exec(t, e.prod, q)
	}
	if err := <-benchDone; err != nil {
		t.Fatalf("pgbench: %v\n%s", err, benchOut.String())
	}
	t.Logf("pgbench ran %s: %s", time.Since(start).Round(time.Millisecond), pgbenchTPS(benchOut.String()))
	if !sync.running() {
		t.Fatalf("sync died under pgbench:\n%s", sync.output())
	}
	waitConverged(t, e, pgbenchFingerprint, true, sync, 2*time.Minute)
	if n := count(e.test, "pgbench_accounts WHERE aid BETWEEN 300001 AND 319000"); n != 19000 {
		t.Errorf("target has %d of the large transaction's surviving 19000 rows", n)
	}
	took := sync.stop(t, 10*time.Second)
	t.Logf("sync stopped %s after SIGTERM", took.Round(time.Millisecond))
	if code, out := e.verify(); code != 0 {
		t.Fatalf("verify after stop: exit %d\n%s", code, out)
	}
}

func pgbenchTPS(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "tps") || strings.HasPrefix(l, "number of transactions actually processed") {
			return strings.TrimSpace(l)
		}
	}
	return "(no tps line)"
}
