// Command mysqlbench benchmarks understudy's MariaDB → MariaDB pipeline against the
// baselines a team would otherwise use, in the same run on the same machine
// (mirrors bench/pgbench):
//
//   - bulk:    `understudy load` (3 anonymized columns) vs `mariadb-dump | mariadb`
//   - backlog: `understudy sync` catching up a backlog of row changes vs a native
//     MariaDB replica (CHANGE MASTER TO … MASTER_USE_GTID=slave_pos; START SLAVE)
//     catching up the same backlog
//   - lag:     replication lag (p50/p95/p99/max), pt-heartbeat style, of
//     `understudy sync` while `sysbench oltp_write_only` runs on production
//   - memory:  peak RSS of `understudy load` at rows/10 and rows
//
// Every scenario starts its own hermetic "production" (server-id 1) and "test"
// (server-id 2) MariaDB servers with testenv and stops them. understudy is the real
// binary (built with `go build` unless -bin is given), timed by wall clock; peak
// RSS comes from the child's wait4 rusage.
//
//	go run ./bench/mysqlbench -scenario all
//	go run ./bench/mysqlbench -scenario bulk -rows 200000
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/understudy/understudy/testenv"
)

var (
	scenario    = flag.String("scenario", "all", "bulk | backlog | lag | memory | all (comma-separated list allowed)")
	rows        = flag.Int("rows", 1_000_000, "bulk/memory: rows in the customers table")
	backlogRows = flag.Int("backlog-rows", 100_000, "backlog: rows in the customers table the backlog updates")
	changes     = flag.Int("changes", 1_000_000, "backlog: row changes in the backlog")
	txnRows     = flag.Int("txn-rows", 1_000, "backlog: rows changed per production transaction")
	duration    = flag.Duration("duration", 30*time.Second, "lag: how long sysbench runs")
	sbTables    = flag.Int("sb-tables", 4, "lag: sysbench --tables")
	sbSize      = flag.Int("sb-size", 10_000, "lag: sysbench --table-size")
	sbThreads   = flag.Int("sb-threads", 2, "lag: sysbench --threads")
	sbRate      = flag.Int("sb-rate", 0, "lag: sysbench --rate (transactions/s; 0 = as fast as it goes)")
	workers     = flag.Int("workers", 4, "understudy load --workers")
	binFlag     = flag.String("bin", "", "understudy binary (default: go build ./cmd/understudy into the work dir)")
	keep        = flag.Bool("keep", false, "keep the work dir (configs, logs)")
	rulesFlag   = flag.String("rules", "anon", "bulk/backlog/memory rules: anon (last_name replace, email replace, ssn hash), hash (ssn hash only), keep (no rules)")
	profile     = flag.Bool("profile", false, "write CPU profiles of understudy runs into the work dir (UNDERSTUDY_CPUPROFILE); implies -keep")
)

type result struct {
	scenario, metric, understudy, baseline, ratio, target, verdict string
}

var (
	results []result
	work    string
	bin     string
	loadRSS = map[int]int64{}
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *profile {
		*keep = true
	}
	var err error
	if work, err = os.MkdirTemp("", "understudy-mybench-"); err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(work)
	}
	if bin = *binFlag; bin == "" {
		bin = filepath.Join(work, "understudy")
		say("building understudy: go build -o %s ./cmd/understudy", bin)
		b := exec.Command("go", "build", "-o", bin, "./cmd/understudy")
		b.Stdout, b.Stderr = os.Stdout, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}
	machine()
	want := strings.Split(*scenario, ",")
	if slices.Contains(want, "all") {
		want = []string{"bulk", "backlog", "lag", "memory"}
	}
	for _, s := range want {
		var err error
		switch s {
		case "bulk":
			err = bulk(ctx)
		case "backlog":
			err = backlog(ctx)
		case "lag":
			err = lag(ctx)
		case "memory":
			err = memory(ctx)
		default:
			err = fmt.Errorf("unknown scenario %q", s)
		}
		if err != nil {
			printResults()
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	printResults()
	load, _ := os.ReadFile("/proc/loadavg")
	say("loadavg at the end: %s", strings.TrimSpace(string(load)))
	if *keep {
		fmt.Println("work dir kept:", work)
	}
	return nil
}

func say(format string, args ...any) {
	fmt.Printf("[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func machine() {
	model := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	v, _ := exec.Command("mariadb", "--version").Output()
	say("machine: nproc=%d cpu=%q %s; %s; loadavg %s", runtime.NumCPU(), model, runtime.GOOS+"/"+runtime.GOARCH,
		strings.TrimSpace(string(v)), strings.TrimSpace(string(load)))
}

func printResults() {
	if len(results) == 0 {
		return
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tMETRIC\tUNDERSTUDY\tBASELINE\tRATIO\tTARGET\tMET")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.scenario, r.metric, r.understudy, r.baseline, r.ratio, r.target, r.verdict)
	}
	tw.Flush()
}

func record(r result) {
	results = append(results, r)
	fmt.Printf("    => %s %s: understudy %s, baseline %s, ratio %s (target %s: %s)\n",
		r.scenario, r.metric, r.understudy, r.baseline, r.ratio, r.target, r.verdict)
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// ---------------------------------------------------------------- servers & SQL

type pair struct{ prod, test *testenv.MariaDBServer }

func startPair() (*pair, error) {
	prod, err := testenv.StartMariaDBWithID("", 1)
	if err != nil {
		return nil, err
	}
	test, err := testenv.StartMariaDBWithID("", 2)
	if err != nil {
		prod.Stop()
		return nil, err
	}
	say("production MariaDB on 127.0.0.1:%d (server-id 1, ROW binlog), test MariaDB on 127.0.0.1:%d (server-id 2)", prod.Port, test.Port)
	return &pair{prod, test}, nil
}

func (p *pair) stop() { p.prod.Stop(); p.test.Stop() }

func dsn(s *testenv.MariaDBServer, db string) string {
	return s.DSN(db) + "?charset=utf8mb4&multiStatements=true"
}

func execSQL(ctx context.Context, s *testenv.MariaDBServer, db string, stmts ...string) error {
	c, err := sql.Open("mysql", dsn(s, db))
	if err != nil {
		return err
	}
	defer c.Close()
	for _, q := range stmts {
		if _, err := c.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%.60s…: %w", q, err)
		}
	}
	return nil
}

func queryString(ctx context.Context, s *testenv.MariaDBServer, db, q string, args ...any) (string, error) {
	c, err := sql.Open("mysql", dsn(s, db))
	if err != nil {
		return "", err
	}
	defer c.Close()
	var v sql.NullString
	err = c.QueryRowContext(ctx, q, args...).Scan(&v)
	return v.String, err
}

func queryInt(ctx context.Context, s *testenv.MariaDBServer, db, q string, args ...any) (int64, error) {
	v, err := queryString(ctx, s, db, q, args...)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}

func connArgs(s *testenv.MariaDBServer) []string {
	return []string{"--no-defaults", "-h127.0.0.1", "-P" + strconv.Itoa(s.Port), "-uroot", "--default-character-set=utf8mb4"}
}

// customersDDL is a customers-like table of 10 columns; last_name, email and ssn
// are the anonymized ones.
const customersDDL = `CREATE TABLE customers (
  id bigint NOT NULL PRIMARY KEY,
  first_name varchar(40),
  last_name varchar(40),
  email varchar(80),
  ssn char(11),
  phone varchar(20),
  city varchar(20),
  balance decimal(12,2) NOT NULL,
  score int NOT NULL,
  created_at datetime(6) NOT NULL
) DEFAULT CHARSET=utf8mb4`

// seedCustomers fills customers with n rows server-side: ~20k distinct surnames,
// a distinct email per row, SSN-shaped strings, 1% NULL last names.
func seedCustomers(ctx context.Context, s *testenv.MariaDBServer, db string, n int) error {
	start := time.Now()
	err := execSQL(ctx, s, db, customersDDL, fmt.Sprintf(`
INSERT INTO customers
SELECT seq,
       ELT(1 + seq %% 10, 'Ada','Grace','Alan','Zoë','José','Åsa','Nnamdi','Mei','Olga','Søren'),
       IF(seq %% 100 = 7, NULL, CONCAT(UPPER(LEFT(MD5(seq %% 20011), 1)), SUBSTR(MD5(seq %% 20011), 2, 3 + seq %% 7))),
       CONCAT('user', seq, '.', LEFT(MD5(seq), 6), '@corp.example'),
       CONCAT(LPAD((seq * 7919) %% 899 + 100, 3, '0'), '-', LPAD((seq * 31) %% 99 + 1, 2, '0'), '-', LPAD((seq * 131) %% 9999 + 1, 4, '0')),
       CONCAT('+1 (555) ', LPAD(seq %% 1000, 3, '0'), '-', LPAD(seq %% 10000, 4, '0')),
       ELT(1 + seq %% 8, 'Berlin','Lagos','Osaka','Lima','Oslo','Austin','Pune','Porto'),
       ((seq * 7) %% 1000000) / 100,
       seq %% 1000,
       TIMESTAMP '2020-01-01 00:00:00' + INTERVAL seq * 37 SECOND
FROM seq_1_to_%d`, n), "ANALYZE TABLE customers")
	if err == nil {
		say("seeded %d customers in %s", n, time.Since(start).Round(time.Millisecond))
	}
	return err
}

// ---------------------------------------------------------------- processes

type runStat struct {
	elapsed time.Duration
	maxRSS  int64 // KiB
}

func timed(cmd *exec.Cmd, logName string) (runStat, error) {
	f, err := os.Create(filepath.Join(work, logName))
	if err != nil {
		return runStat{}, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	start := time.Now()
	err = cmd.Run()
	st := runStat{elapsed: time.Since(start)}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			st.maxRSS = ru.Maxrss
		}
	}
	if err != nil {
		return st, fmt.Errorf("%s: %w (log: %s)", strings.Join(cmd.Args, " "), err, tailOf(filepath.Join(work, logName)))
	}
	return st, nil
}

func tailOf(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// dumpCopy copies table data the baseline way, schema already on dst:
// mariadb-dump --no-create-info (extended inserts, its defaults) | mariadb.
func dumpCopy(src *testenv.MariaDBServer, srcDB string, dst *testenv.MariaDBServer, dstDB string, tables ...string) *exec.Cmd {
	dump := append(append([]string{"mariadb-dump"}, connArgs(src)...), "--no-create-info", "--single-transaction", srcDB)
	dump = append(dump, tables...)
	load := append(append([]string{"mariadb"}, connArgs(dst)...), dstDB)
	return exec.Command("bash", "-o", "pipefail", "-c", shellJoin(dump)+" | "+shellJoin(load))
}

var runs int

// understudyConfig writes a config for one pipeline "bench" (embedded mapping
// store beside it) and returns its path.
func understudyConfig(dir, source, target string, tables []string, rules string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cfg := fmt.Sprintf(`secret: ${UNDERSTUDY_SECRET}
mappings: file:mappings.db
pipelines:
  - name: bench
    source: %s
    target: %s
    tables: [%s]
%s`, source, target, strings.Join(tables, ", "), rules)
	path := filepath.Join(dir, "understudy.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

func understudy(cfg string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, append(args, "--config", cfg)...)
	cmd.Env = append(os.Environ(), "UNDERSTUDY_SECRET=bench-secret-not-for-production-0123456789")
	if *profile {
		runs++
		cmd.Env = append(cmd.Env, fmt.Sprintf("UNDERSTUDY_CPUPROFILE=%s", filepath.Join(work, fmt.Sprintf("cpu-%02d-%s.pprof", runs, args[0]))))
	}
	return cmd
}

func customerRules() string {
	switch *rulesFlag {
	case "keep":
		return ""
	case "hash":
		return "    rules:\n      bench.customers:\n        ssn: hash\n"
	}
	return `    rules:
      bench.customers:
        last_name: {replace: last_name, domain: surname}
        email:     {replace: email, domain: email}
        ssn:       hash
`
}

func mib(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

// ---------------------------------------------------------------- 1. bulk load

func bulk(ctx context.Context) error {
	say("== bulk load: %d customers, 10 columns, 3 anonymized (last_name replace, email replace, ssn hash)", *rows)
	us, base, err := loadPair(ctx, *rows, "bulk", true)
	if err != nil {
		return err
	}
	ur := float64(*rows) / us.elapsed.Seconds()
	br := float64(*rows) / base.elapsed.Seconds()
	record(result{"bulk load", fmt.Sprintf("rows/s (%d rows)", *rows),
		fmt.Sprintf("%.0f (%.1fs)", ur, us.elapsed.Seconds()), fmt.Sprintf("%.0f (%.1fs)", br, base.elapsed.Seconds()),
		fmt.Sprintf("%.2f×", ur/br), "≥ 1.5×", verdict(ur/br >= 1.5)})
	record(result{"bulk load", "peak RSS", mib(us.maxRSS), mib(base.maxRSS) + " (largest of dump, client)", "", "bounded", "see memory"})
	return nil
}

func loadPair(ctx context.Context, n int, name string, withBaseline bool) (us, base runStat, err error) {
	p, err := startPair()
	if err != nil {
		return us, base, err
	}
	defer p.stop()
	if err := execSQL(ctx, p.prod, "", "CREATE DATABASE bench"); err != nil {
		return us, base, err
	}
	if err := execSQL(ctx, p.test, "", "CREATE DATABASE baseline", "CREATE DATABASE replica"); err != nil {
		return us, base, err
	}
	if err := seedCustomers(ctx, p.prod, "bench", n); err != nil {
		return us, base, err
	}
	if withBaseline {
		if err := execSQL(ctx, p.test, "baseline", customersDDL); err != nil {
			return us, base, err
		}
		cmd := dumpCopy(p.prod, "bench", p.test, "baseline", "customers")
		say("baseline: %s", cmd.Args[len(cmd.Args)-1])
		if base, err = timed(cmd, name+"-baseline.log"); err != nil {
			return us, base, err
		}
		if got, err := queryInt(ctx, p.test, "baseline", "SELECT count(*) FROM customers"); err != nil || got != int64(n) {
			return us, base, fmt.Errorf("baseline copied %d rows, want %d (%v)", got, n, err)
		}
		say("baseline mariadb-dump | mariadb: %d rows in %s, peak RSS %s", n, base.elapsed.Round(time.Millisecond), mib(base.maxRSS))
	}
	cfg, err := understudyConfig(filepath.Join(work, name), p.prod.URL("bench"), p.test.URL("replica"), []string{"bench.customers"}, customerRules())
	if err != nil {
		return us, base, err
	}
	cmd := understudy(cfg, "load", "--workers", strconv.Itoa(*workers))
	say("understudy: %s", strings.Join(cmd.Args, " "))
	if us, err = timed(cmd, name+"-understudy.log"); err != nil {
		return us, base, err
	}
	loadRSS[n] = us.maxRSS
	if got, err := queryInt(ctx, p.test, "replica", "SELECT count(*) FROM customers"); err != nil || got != int64(n) {
		return us, base, fmt.Errorf("understudy loaded %d rows, want %d (%v)", got, n, err)
	}
	if *rulesFlag == "anon" {
		same, err := queryInt(ctx, p.test, "replica", "SELECT count(*) FROM customers WHERE email LIKE 'user%@corp.example'")
		if err != nil || same != 0 {
			return us, base, fmt.Errorf("%d target emails look like production's (%v)", same, err)
		}
	}
	say("understudy load: %d rows in %s, peak RSS %s (rules=%s)", n, us.elapsed.Round(time.Millisecond), mib(us.maxRSS), *rulesFlag)
	return us, base, nil
}

// ---------------------------------------------------------------- 4. memory

func memory(ctx context.Context) error {
	small := max(*rows/10, 1)
	say("== memory: peak RSS of understudy load at %d and %d rows", small, *rows)
	for _, n := range []int{small, *rows} {
		if _, ok := loadRSS[n]; ok {
			continue
		}
		if _, _, err := loadPair(ctx, n, fmt.Sprintf("memory-%d", n), false); err != nil {
			return err
		}
	}
	a, b := loadRSS[small], loadRSS[*rows]
	record(result{"memory", fmt.Sprintf("load peak RSS %d → %d rows", small, *rows),
		mib(a) + " → " + mib(b), "", fmt.Sprintf("%.2f× RSS for %d× rows", float64(b)/float64(a), *rows/small),
		"bounded", verdict(float64(b) < 2*float64(a))})
	return nil
}

// ---------------------------------------------------------------- 2. backlog

const marker = -424242

func backlog(ctx context.Context) error {
	say("== backlog catch-up: %d changes as UPDATE … WHERE id BETWEEN transactions of %d rows over %d customers",
		*changes, *txnRows, *backlogRows)
	p, err := startPair()
	if err != nil {
		return err
	}
	defer p.stop()
	if err := execSQL(ctx, p.prod, "", "CREATE DATABASE bench"); err != nil {
		return err
	}
	if err := seedCustomers(ctx, p.prod, "bench", *backlogRows); err != nil {
		return err
	}
	// Native: the same database name on the test server, same data, a stopped
	// replica whose GTID position is production's now.
	if err := execSQL(ctx, p.test, "", "CREATE DATABASE bench", "CREATE DATABASE replica"); err != nil {
		return err
	}
	if err := execSQL(ctx, p.test, "bench", customersDDL); err != nil {
		return err
	}
	if _, err := timed(dumpCopy(p.prod, "bench", p.test, "bench", "customers"), "backlog-native-copy.log"); err != nil {
		return err
	}
	gtid, err := queryString(ctx, p.prod, "", "SELECT @@gtid_binlog_pos")
	if err != nil {
		return err
	}
	if err := execSQL(ctx, p.test, "",
		"SET GLOBAL replicate_do_db = 'bench'",
		fmt.Sprintf("SET GLOBAL gtid_slave_pos = '%s'", gtid),
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='root', MASTER_USE_GTID=slave_pos", p.prod.Port)); err != nil {
		return err
	}
	// understudy: the initial load records its start position.
	cfg, err := understudyConfig(filepath.Join(work, "backlog"), p.prod.URL("bench"), p.test.URL("replica"), []string{"bench.customers"}, customerRules())
	if err != nil {
		return err
	}
	if _, err := timed(understudy(cfg, "load"), "backlog-load.log"); err != nil {
		return err
	}
	say("initial state in place on both targets (native replica stopped at gtid %s); generating the backlog", gtid)

	c, err := sql.Open("mysql", dsn(p.prod, "bench"))
	if err != nil {
		return err
	}
	start := time.Now()
	txns := 0
	for done := 0; done < *changes; done += *txnRows {
		n := min(*txnRows, *changes-done)
		lo := done%*backlogRows + 1
		hi := min(lo+n-1, *backlogRows)
		if _, err := c.ExecContext(ctx, `UPDATE customers SET score = score + 1, balance = balance + 0.01 WHERE id BETWEEN ? AND ?`, lo, hi); err != nil {
			c.Close()
			return err
		}
		txns++
	}
	if _, err := c.ExecContext(ctx, `UPDATE customers SET score = ? WHERE id = 1`, marker); err != nil {
		c.Close()
		return err
	}
	c.Close()
	gen := time.Since(start)
	say("backlog: %d changes in %d transactions (+1 marker) written in %s (%.0f changes/s)",
		*changes, txns, gen.Round(time.Millisecond), float64(*changes)/gen.Seconds())

	// Native catch-up.
	start = time.Now()
	if err := execSQL(ctx, p.test, "", "START SLAVE"); err != nil {
		return err
	}
	nativeT, err := waitMarker(ctx, p.test, "bench", start, 30*time.Minute)
	if err != nil {
		return fmt.Errorf("native: %w", err)
	}
	say("native replica (START SLAVE): marker applied after %s", nativeT.Round(time.Millisecond))
	if err := execSQL(ctx, p.test, "", "STOP SLAVE"); err != nil {
		return err
	}

	// understudy catch-up.
	start = time.Now()
	syncCmd := understudy(cfg, "sync", "--metrics", "off")
	logf, err := os.Create(filepath.Join(work, "backlog-sync.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	syncCmd.Stdout, syncCmd.Stderr = logf, logf
	if err := syncCmd.Start(); err != nil {
		return err
	}
	usT, err := waitMarker(ctx, p.test, "replica", start, 30*time.Minute)
	if err != nil {
		stopSync(syncCmd)
		return fmt.Errorf("understudy: %w (log: %s)", err, tailOf(logf.Name()))
	}
	rss := stopSync(syncCmd)
	say("understudy sync: marker applied after %s, peak RSS %s", usT.Round(time.Millisecond), mib(rss))

	sum := "SELECT CAST(sum(score) + sum(balance * 100) AS SIGNED) FROM customers"
	a, err1 := queryInt(ctx, p.test, "bench", sum)
	b, err2 := queryInt(ctx, p.test, "replica", sum)
	if err := errors.Join(err1, err2); err != nil || a != b {
		return fmt.Errorf("targets differ after catch-up: native checksum %d, understudy %d (%v)", a, b, err)
	}
	ur, nr := float64(*changes)/usT.Seconds(), float64(*changes)/nativeT.Seconds()
	record(result{"backlog catch-up", fmt.Sprintf("changes/s (%d changes, %d-row txns)", *changes, *txnRows),
		fmt.Sprintf("%.0f (%.1fs)", ur, usT.Seconds()), fmt.Sprintf("%.0f (%.1fs)", nr, nativeT.Seconds()),
		fmt.Sprintf("%.2f×", ur/nr), "≥ 1.0×", verdict(ur/nr >= 1.0)})
	record(result{"backlog catch-up", "understudy sync peak RSS", mib(rss), "", "", "bounded", ""})
	return nil
}

// waitMarker polls customers id 1 until it holds the marker.
func waitMarker(ctx context.Context, s *testenv.MariaDBServer, db string, start time.Time, limit time.Duration) (time.Duration, error) {
	c, err := sql.Open("mysql", dsn(s, db))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	for time.Since(start) < limit {
		var score int64
		if err := c.QueryRowContext(ctx, "SELECT score FROM customers WHERE id = 1").Scan(&score); err != nil {
			return 0, err
		}
		if score == marker {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("marker not applied within %s", limit)
}

func stopSync(cmd *exec.Cmd) int64 {
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}

// ---------------------------------------------------------------- 3. lag

func lag(ctx context.Context) error {
	rate := "max rate"
	if *sbRate > 0 {
		rate = fmt.Sprintf("--rate=%d", *sbRate)
	}
	say("== lag under sysbench oltp_write_only --tables=%d --table-size=%d --threads=%d --time=%s (%s) while understudy syncs",
		*sbTables, *sbSize, *sbThreads, duration.String(), rate)
	p, err := startPair()
	if err != nil {
		return err
	}
	defer p.stop()
	if err := execSQL(ctx, p.prod, "", "CREATE DATABASE sb"); err != nil {
		return err
	}
	if err := execSQL(ctx, p.test, "", "CREATE DATABASE replica"); err != nil {
		return err
	}
	sysbench := func(args ...string) *exec.Cmd {
		base := []string{"oltp_write_only", "--db-driver=mysql", "--mysql-host=127.0.0.1", "--mysql-port=" + strconv.Itoa(p.prod.Port),
			"--mysql-user=root", "--mysql-db=sb", "--tables=" + strconv.Itoa(*sbTables), "--table-size=" + strconv.Itoa(*sbSize)}
		return exec.Command("sysbench", append(base, args...)...)
	}
	if _, err := timed(sysbench("prepare"), "lag-sysbench-prepare.log"); err != nil {
		return err
	}
	// pt-heartbeat style: production writes its clock into a row; the replica's
	// copy of that row, read against the same clock, is the lag.
	if err := execSQL(ctx, p.prod, "sb", "CREATE TABLE heartbeat (id int PRIMARY KEY, ts datetime(6) NOT NULL)",
		"INSERT INTO heartbeat VALUES (1, UTC_TIMESTAMP(6))"); err != nil {
		return err
	}
	tables := []string{"sb.heartbeat"}
	for i := 1; i <= *sbTables; i++ {
		tables = append(tables, fmt.Sprintf("sb.sbtest%d", i))
	}
	rules := "    rules:\n"
	for i := 1; i <= *sbTables; i++ {
		rules += fmt.Sprintf("      sb.sbtest%d:\n        c: hash\n", i)
	}
	cfg, err := understudyConfig(filepath.Join(work, "lag"), p.prod.URL("sb"), p.test.URL("replica"), tables, rules)
	if err != nil {
		return err
	}
	syncCmd := understudy(cfg, "sync", "--metrics", "off")
	logf, err := os.Create(filepath.Join(work, "lag-sync.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	syncCmd.Stdout, syncCmd.Stderr = logf, logf
	if err := syncCmd.Start(); err != nil {
		return err
	}
	defer func() {
		if syncCmd.ProcessState == nil {
			stopSync(syncCmd)
		}
	}()
	src, err := sql.Open("mysql", dsn(p.prod, "sb"))
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := sql.Open("mysql", dsn(p.test, "replica"))
	if err != nil {
		return err
	}
	defer dst.Close()
	beat := func() error {
		_, err := src.ExecContext(ctx, "UPDATE heartbeat SET ts = UTC_TIMESTAMP(6) WHERE id = 1")
		return err
	}
	read := func() (time.Duration, error) {
		var l float64
		// Both servers run on this machine, so they share the clock.
		err := dst.QueryRowContext(ctx, "SELECT TIMESTAMPDIFF(MICROSECOND, ts, UTC_TIMESTAMP(6)) FROM heartbeat WHERE id = 1").Scan(&l)
		return time.Duration(l) * time.Microsecond, err
	}
	if err := beat(); err != nil {
		return err
	}
	// Streaming is live and caught up with the initial load (which sync runs
	// first, copying one heartbeat) once heartbeats written every 100 ms arrive
	// within 300 ms for a whole second.
	for deadline, fresh := time.Now().Add(2*time.Minute), 0; fresh < 10; time.Sleep(100 * time.Millisecond) {
		if l, err := read(); err == nil && l < 300*time.Millisecond {
			fresh++
		} else {
			fresh = 0
		}
		if err := beat(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("understudy sync did not start streaming within 2 minutes (log: %s)", tailOf(logf.Name()))
		}
	}
	args := []string{"run", "--time=" + strconv.Itoa(int(duration.Seconds())), "--threads=" + strconv.Itoa(*sbThreads), "--report-interval=5"}
	if *sbRate > 0 {
		args = append(args, "--rate="+strconv.Itoa(*sbRate))
	}
	bench := sysbench(args...)
	var benchOut strings.Builder
	bench.Stdout, bench.Stderr = &benchOut, &benchOut
	if err := bench.Start(); err != nil {
		return err
	}
	benchDone := make(chan error, 1)
	go func() { benchDone <- bench.Wait() }()
	var (
		mu       sync.Mutex
		beatErr  error
		stopBeat = make(chan struct{})
		beatDone = make(chan struct{})
	)
	go func() {
		defer close(beatDone)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopBeat:
				return
			case <-t.C:
				if err := beat(); err != nil {
					mu.Lock()
					beatErr = err
					mu.Unlock()
					return
				}
			}
		}
	}()
	var samples []time.Duration
	benchStart := time.Now()
	t := time.NewTicker(100 * time.Millisecond)
	var benchErr error
sample:
	for {
		select {
		case benchErr = <-benchDone:
			break sample
		case <-t.C:
			l, err := read()
			if err != nil {
				t.Stop()
				return err
			}
			samples = append(samples, l)
		}
	}
	t.Stop()
	endBench := time.Now()
	var drain time.Duration = -1
	for time.Since(endBench) < 2*time.Minute {
		if l, err := read(); err == nil && l < 300*time.Millisecond {
			drain = time.Since(endBench)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stopBeat)
	<-beatDone
	rss := stopSync(syncCmd)
	if benchErr != nil {
		return fmt.Errorf("sysbench: %w: %s", benchErr, benchOut.String())
	}
	if beatErr != nil {
		return fmt.Errorf("heartbeat: %w", beatErr)
	}
	tps := "?"
	if m := regexp.MustCompile(`transactions:\s+\d+\s+\(([\d.]+) per sec`).FindStringSubmatch(benchOut.String()); m != nil {
		tps = m[1]
	}
	for _, l := range strings.Split(benchOut.String(), "\n") {
		if strings.HasPrefix(l, "[ ") {
			fmt.Println("    " + l)
		}
	}
	if len(samples) == 0 {
		return errors.New("no lag samples")
	}
	// The worst lag of every 5 s, to tell a steady lag from a stall.
	var windows []string
	for i := 0; i < len(samples); i += 50 {
		windows = append(windows, ms(slices.Max(samples[i:min(i+50, len(samples))])))
	}
	say("max lag per 5 s since sysbench started at %s: %s", benchStart.Format("15:04:05"), strings.Join(windows, ", "))
	if os.Getenv("MYSQLBENCH_TRACE") != "" {
		var first []string
		for _, l := range samples[:min(50, len(samples))] {
			first = append(first, strconv.FormatInt(l.Milliseconds(), 10))
		}
		say("first 5 s of lag samples (ms): %s", strings.Join(first, " "))
	}
	slices.Sort(samples)
	pct := func(q float64) time.Duration { return samples[min(len(samples)-1, int(q*float64(len(samples))))] }
	say("sysbench: %s tps; %d lag samples; back within 300 ms %s after sysbench ended", tps, len(samples), drain.Round(time.Millisecond))
	p99 := pct(0.99)
	record(result{"lag under sysbench", fmt.Sprintf("lag p50 / p95 / p99 / max (oltp_write_only %s tps, %d threads, %s, %s)", tps, *sbThreads, rate, duration),
		fmt.Sprintf("%s / %s / %s / %s", ms(pct(0.50)), ms(pct(0.95)), ms(p99), ms(samples[len(samples)-1])), "", "", "p99 < 1 s", verdict(p99 < time.Second)})
	record(result{"lag under sysbench", "understudy sync peak RSS", mib(rss), "", "", "bounded", ""})
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
