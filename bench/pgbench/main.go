// Command pgbench benchmarks understudy's Postgres → Postgres pipeline against the
// baselines a team would otherwise use, in the same run on the same machine:
//
//   - bulk:    `understudy load` (3 anonymized columns) vs `pg_dump --data-only | psql`
//   - backlog: `understudy sync` catching up a backlog of changes vs native logical
//     replication (CREATE SUBSCRIPTION … copy_data=false, enabled later)
//   - lag:     replication lag (p50/p95/p99) of `understudy sync` while `pgbench`
//     runs at full speed on production
//   - memory:  peak RSS of `understudy load` at rows/10 and rows
//
// Every scenario starts its own hermetic "production" (wal_level=logical) and
// "test" Postgres 15 servers with testenv.StartPostgres and stops them. understudy
// is the real binary (built with `go build` unless -bin is given), timed by wall
// clock; peak RSS comes from the child's wait4 rusage.
//
//	go run ./bench/pgbench -scenario all
//	go run ./bench/pgbench -scenario bulk -rows 200000
package main

import (
	"bufio"
	"bytes"
	"context"
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

	"github.com/jackc/pgx/v5"

	"github.com/understudy/understudy/testenv"
)

const pgBin = "/usr/lib/postgresql/15/bin"

var (
	scenario    = flag.String("scenario", "all", "bulk | backlog | lag | memory | all (comma-separated list allowed)")
	rows        = flag.Int("rows", 1_000_000, "bulk/memory: rows in the customers table")
	backlogRows = flag.Int("backlog-rows", 100_000, "backlog: rows in the customers table the backlog updates")
	changes     = flag.Int("changes", 1_000_000, "backlog: row changes in the backlog")
	txnRows     = flag.Int("txn-rows", 1_000, "backlog: rows changed per production transaction")
	duration    = flag.Duration("duration", 30*time.Second, "lag: how long pgbench runs")
	scale       = flag.Int("scale", 10, "lag: pgbench -i scale factor")
	clients     = flag.Int("clients", 4, "lag: pgbench -c")
	threads     = flag.Int("threads", 2, "lag: pgbench -j")
	workers     = flag.Int("workers", 4, "understudy load --workers")
	mappings    = flag.String("mappings", "file", "mapping store for understudy: file (embedded Pebble) or redis (a redis-server started here)")
	binFlag     = flag.String("bin", "", "understudy binary (default: go build ./cmd/understudy into the work dir)")
	keep        = flag.Bool("keep", false, "keep the work dir (configs, logs)")
	rulesFlag   = flag.String("rules", "anon", "bulk/backlog/memory rules: anon (last_name replace, email replace, ssn hash), hash (ssn hash only), keep (no rules) — for finding where time goes")
)

// result is one line of the final table.
type result struct {
	scenario, metric, understudy, baseline, ratio, target, verdict string
}

var (
	results []result
	work    string
	bin     string
	redis   *testenv.RedisServer
	// loadRSS remembers peak RSS of loads by row count, for the memory scenario.
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
	var err error
	if work, err = os.MkdirTemp("", "understudy-bench-"); err != nil {
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
	if *mappings == "redis" {
		if redis, err = testenv.StartRedis(""); err != nil {
			return err
		}
		defer redis.Stop()
	} else if *mappings != "file" {
		return fmt.Errorf("-mappings %q: use file or redis", *mappings)
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
	pgv, _ := exec.Command(filepath.Join(pgBin, "postgres"), "--version").Output()
	say("machine: nproc=%d cpu=%q %s; %s; loadavg %s; mappings=%s",
		runtime.NumCPU(), model, runtime.GOOS+"/"+runtime.GOARCH, strings.TrimSpace(string(pgv)),
		strings.TrimSpace(string(load)), *mappings)
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

type pair struct{ prod, test *testenv.PostgresServer }

func startPair() (*pair, error) {
	prod, err := testenv.StartPostgres("")
	if err != nil {
		return nil, err
	}
	test, err := testenv.StartPostgres("")
	if err != nil {
		prod.Stop()
		return nil, err
	}
	say("production Postgres on 127.0.0.1:%d (wal_level=logical), test Postgres on 127.0.0.1:%d", prod.Port, test.Port)
	return &pair{prod, test}, nil
}

func (p *pair) stop() { p.prod.Stop(); p.test.Stop() }

func execSQL(ctx context.Context, dsn string, sql ...string) error {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	for _, q := range sql {
		if _, err := c.Exec(ctx, q); err != nil {
			return fmt.Errorf("%.60s…: %w", q, err)
		}
	}
	return nil
}

func queryInt(ctx context.Context, dsn, q string, args ...any) (int64, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	var n int64
	err = c.QueryRow(ctx, q, args...).Scan(&n)
	return n, err
}

func connArgs(s *testenv.PostgresServer, db string) []string {
	return []string{"-h", s.Host, "-p", strconv.Itoa(s.Port), "-U", "postgres", "-d", db}
}

// customers is a customers-like table of 10 columns; last_name, email and ssn are
// the anonymized ones.
const customersDDL = `CREATE TABLE customers (
  id bigint PRIMARY KEY,
  first_name text,
  last_name text,
  email text,
  ssn text,
  phone text,
  city text,
  balance numeric(12,2) NOT NULL,
  score int NOT NULL,
  created_at timestamptz NOT NULL
)`

// seedCustomers fills customers with n rows server-side: ~20k distinct surnames,
// a distinct email per row, SSN-shaped strings, 1% NULL last names.
func seedCustomers(ctx context.Context, dsn string, n int) error {
	start := time.Now()
	err := execSQL(ctx, dsn, customersDDL, fmt.Sprintf(`
INSERT INTO customers
SELECT g,
       (ARRAY['Ada','Grace','Alan','Zoë','José','Åsa','Nnamdi','Mei','Olga','Søren'])[1 + g %% 10],
       CASE WHEN g %% 100 = 7 THEN NULL ELSE initcap(substr(md5((g %% 20011)::text), 1, (4 + g %% 7)::int)) END,
       'user' || g || '.' || substr(md5(g::text), 1, 6) || '@corp.example',
       lpad(((g * 7919) %% 899) + 100 || '', 3, '0') || '-' || lpad(((g * 31) %% 99 + 1)::text, 2, '0') || '-' || lpad(((g * 131) %% 9999 + 1)::text, 4, '0'),
       '+1 (555) ' || lpad((g %% 1000)::text, 3, '0') || '-' || lpad((g %% 10000)::text, 4, '0'),
       (ARRAY['Berlin','Lagos','Osaka','Lima','Oslo','Austin','Pune','Porto'])[1 + g %% 8],
       ((g * 7) %% 1000000) / 100.0,
       g %% 1000,
       timestamptz '2020-01-01 00:00:00+00' + g * interval '37 seconds'
FROM generate_series(1::bigint, %d) g`, n), "VACUUM (ANALYZE) customers", "CHECKPOINT")
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

// timed runs cmd to completion, its output going to logName in the work dir.
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

func pipe(shell string) *exec.Cmd {
	return exec.Command("bash", "-o", "pipefail", "-c", shell)
}

func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// pgCopy copies table data from src.db to dst.db the baseline way, schema already
// present on dst: pg_dump --data-only | psql.
func pgCopy(src *testenv.PostgresServer, srcDB string, dst *testenv.PostgresServer, dstDB string, tables ...string) *exec.Cmd {
	dump := append([]string{filepath.Join(pgBin, "pg_dump"), "--data-only"}, connArgs(src, srcDB)...)
	for _, t := range tables {
		dump = append(dump, "-t", t)
	}
	psql := append([]string{filepath.Join(pgBin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"}, connArgs(dst, dstDB)...)
	return pipe(shellJoin(dump) + " | " + shellJoin(psql) + " >/dev/null")
}

// understudyConfig writes a config for one pipeline "bench" and returns its path.
func understudyConfig(dir, source, target string, tables []string, rules string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	m := "file:mappings.db"
	if redis != nil {
		// A database of its own per config, so runs never share mappings.
		m = fmt.Sprintf("redis://%s/%d", redis.Addr, nextRedisDB())
	}
	cfg := fmt.Sprintf(`secret: ${UNDERSTUDY_SECRET}
mappings: %s
pipelines:
  - name: bench
    source: %s
    target: %s
    tables: [%s]
%s`, m, source, target, strings.Join(tables, ", "), rules)
	path := filepath.Join(dir, "understudy.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

var redisDB int

func nextRedisDB() int { redisDB++; return redisDB }

func understudy(cfg string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, append(args, "--config", cfg)...)
	cmd.Env = append(os.Environ(), "UNDERSTUDY_SECRET=bench-secret-not-for-production-0123456789")
	return cmd
}

func customerRules() string {
	switch *rulesFlag {
	case "keep":
		return ""
	case "hash":
		return "    rules:\n      public.customers:\n        ssn: hash\n"
	}
	return `    rules:
      public.customers:
        last_name: {replace: last_name, domain: surname}
        email:     {replace: email, domain: email}
        ssn:       hash
`
}

// ---------------------------------------------------------------- 1. bulk load

func bulk(ctx context.Context) error {
	say("== bulk load: %d customers, 10 columns, 3 anonymized (last_name replace, email replace, ssn hash), mappings=%s", *rows, *mappings)
	us, base, err := loadPair(ctx, *rows, "bulk", true)
	if err != nil {
		return err
	}
	ur := float64(*rows) / us.elapsed.Seconds()
	br := float64(*rows) / base.elapsed.Seconds()
	record(result{"bulk load", fmt.Sprintf("rows/s (%d rows)", *rows),
		fmt.Sprintf("%.0f (%.1fs)", ur, us.elapsed.Seconds()), fmt.Sprintf("%.0f (%.1fs)", br, base.elapsed.Seconds()),
		fmt.Sprintf("%.2f×", ur/br), "≥ 1.5×", verdict(ur/br >= 1.5)})
	record(result{"bulk load", "peak RSS", mib(us.maxRSS), mib(base.maxRSS) + " (max of pg_dump, psql)", "", "bounded", "see memory"})
	return nil
}

func mib(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

// loadPair seeds n customers and loads them into the test server with understudy
// and (when withBaseline) with pg_dump | psql.
func loadPair(ctx context.Context, n int, name string, withBaseline bool) (us, base runStat, err error) {
	p, err := startPair()
	if err != nil {
		return us, base, err
	}
	defer p.stop()
	if err := execSQL(ctx, p.prod.DSN("postgres"), "CREATE DATABASE bench"); err != nil {
		return us, base, err
	}
	if err := execSQL(ctx, p.test.DSN("postgres"), "CREATE DATABASE baseline", "CREATE DATABASE replica"); err != nil {
		return us, base, err
	}
	if err := seedCustomers(ctx, p.prod.DSN("bench"), n); err != nil {
		return us, base, err
	}
	if withBaseline {
		if err := execSQL(ctx, p.test.DSN("baseline"), customersDDL); err != nil {
			return us, base, err
		}
		cmd := pgCopy(p.prod, "bench", p.test, "baseline", "public.customers")
		say("baseline: %s", strings.Join(cmd.Args[3:], " "))
		if base, err = timed(cmd, name+"-baseline.log"); err != nil {
			return us, base, err
		}
		if got, err := queryInt(ctx, p.test.DSN("baseline"), "SELECT count(*) FROM customers"); err != nil || got != int64(n) {
			return us, base, fmt.Errorf("baseline copied %d rows, want %d (%v)", got, n, err)
		}
		say("baseline pg_dump | psql: %d rows in %s, peak RSS %s", n, base.elapsed.Round(time.Millisecond), mib(base.maxRSS))
		// Leave the test server as the understudy run will find it.
		if err := execSQL(ctx, p.test.DSN("postgres"), "CHECKPOINT"); err != nil {
			return us, base, err
		}
	}
	cfg, err := understudyConfig(filepath.Join(work, name), p.prod.DSN("bench"), p.test.DSN("replica"),
		[]string{"public.customers"}, customerRules())
	if err != nil {
		return us, base, err
	}
	cmd := understudy(cfg, "load", "--workers", strconv.Itoa(*workers))
	say("understudy: %s", strings.Join(cmd.Args, " "))
	if us, err = timed(cmd, name+"-understudy.log"); err != nil {
		return us, base, err
	}
	loadRSS[n] = us.maxRSS
	if got, err := queryInt(ctx, p.test.DSN("replica"), "SELECT count(*) FROM customers"); err != nil || got != int64(n) {
		return us, base, fmt.Errorf("understudy loaded %d rows, want %d (%v)", got, n, err)
	}
	// Honesty check: the anonymized columns really changed.
	if *rulesFlag != "anon" {
		say("understudy load: %d rows in %s, peak RSS %s (rules=%s)", n, us.elapsed.Round(time.Millisecond), mib(us.maxRSS), *rulesFlag)
		return us, base, nil
	}
	same, err := queryInt(ctx, p.test.DSN("replica"), "SELECT count(*) FROM customers WHERE email LIKE 'user%@corp.example'")
	if err != nil || same != 0 {
		return us, base, fmt.Errorf("%d target emails look like production's (%v)", same, err)
	}
	say("understudy load: %d rows in %s, peak RSS %s", n, us.elapsed.Round(time.Millisecond), mib(us.maxRSS))
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
	prod := p.prod.DSN("bench")
	if err := execSQL(ctx, p.prod.DSN("postgres"), "CREATE DATABASE bench"); err != nil {
		return err
	}
	if err := execSQL(ctx, p.test.DSN("postgres"), "CREATE DATABASE native", "CREATE DATABASE replica"); err != nil {
		return err
	}
	if err := seedCustomers(ctx, prod, *backlogRows); err != nil {
		return err
	}

	// Native: same schema and data, a disabled subscription whose slot is created now.
	if err := execSQL(ctx, p.test.DSN("native"), customersDDL); err != nil {
		return err
	}
	if _, err := timed(pgCopy(p.prod, "bench", p.test, "native", "public.customers"), "backlog-native-copy.log"); err != nil {
		return err
	}
	if err := execSQL(ctx, prod, "CREATE PUBLICATION bench_pub FOR TABLE customers"); err != nil {
		return err
	}
	if err := execSQL(ctx, p.test.DSN("native"), fmt.Sprintf(
		`CREATE SUBSCRIPTION bench_sub CONNECTION 'host=%s port=%d user=postgres dbname=bench' PUBLICATION bench_pub WITH (copy_data = false, enabled = false)`,
		p.prod.Host, p.prod.Port)); err != nil {
		return err
	}

	// understudy: the initial load records its start position (slot created).
	cfg, err := understudyConfig(filepath.Join(work, "backlog"), prod, p.test.DSN("replica"),
		[]string{"public.customers"}, customerRules())
	if err != nil {
		return err
	}
	if _, err := timed(understudy(cfg, "load"), "backlog-load.log"); err != nil {
		return err
	}
	say("initial state in place on both targets; both slots exist; generating the backlog")

	// The backlog.
	c, err := pgx.Connect(ctx, prod)
	if err != nil {
		return err
	}
	start := time.Now()
	txns := 0
	for done := 0; done < *changes; done += *txnRows {
		n := min(*txnRows, *changes-done)
		lo := done%*backlogRows + 1
		hi := min(lo+n-1, *backlogRows)
		if _, err := c.Exec(ctx, `UPDATE customers SET score = score + 1, balance = balance + 0.01 WHERE id BETWEEN $1 AND $2`, lo, hi); err != nil {
			c.Close(ctx)
			return err
		}
		txns++
	}
	if _, err := c.Exec(ctx, `UPDATE customers SET score = $1 WHERE id = 1`, marker); err != nil {
		c.Close(ctx)
		return err
	}
	var endLSN string
	err = c.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&endLSN)
	c.Close(ctx)
	if err != nil {
		return err
	}
	gen := time.Since(start)
	var walBytes int64
	walBytes, _ = queryInt(ctx, prod, "SELECT pg_wal_lsn_diff($1::pg_lsn, confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = 'bench_sub'", endLSN)
	say("backlog: %d changes in %d transactions (+1 marker) written in %s (%.0f changes/s); %.0f MiB of WAL; end LSN %s",
		*changes, txns, gen.Round(time.Millisecond), float64(*changes)/gen.Seconds(), float64(walBytes)/(1<<20), endLSN)

	// Native catch-up.
	if err := execSQL(ctx, p.test.DSN("native"), "CHECKPOINT"); err != nil {
		return err
	}
	start = time.Now()
	if err := execSQL(ctx, p.test.DSN("native"), "ALTER SUBSCRIPTION bench_sub ENABLE"); err != nil {
		return err
	}
	nativeT, err := waitMarker(ctx, p.test.DSN("native"), start, 30*time.Minute)
	if err != nil {
		return fmt.Errorf("native: %w", err)
	}
	flushT, _ := waitSlot(ctx, prod, "bench_sub", endLSN, start, time.Minute)
	say("native logical replication: marker applied after %s (slot confirmed_flush ≥ end LSN after %s)",
		nativeT.Round(time.Millisecond), flushT.Round(time.Millisecond))
	if err := execSQL(ctx, p.test.DSN("native"), "ALTER SUBSCRIPTION bench_sub DISABLE"); err != nil {
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
	usT, err := waitMarker(ctx, p.test.DSN("replica"), start, 30*time.Minute)
	if err != nil {
		syncCmd.Process.Signal(syscall.SIGTERM)
		syncCmd.Wait()
		return fmt.Errorf("understudy: %w (log: %s)", err, tailOf(logf.Name()))
	}
	usFlush, _ := waitSlot(ctx, prod, "understudy_bench", endLSN, start, 30*time.Second)
	rss := stopSync(syncCmd)
	say("understudy sync: marker applied after %s (slot confirmed_flush ≥ end LSN after %s), peak RSS %s",
		usT.Round(time.Millisecond), usFlush.Round(time.Millisecond), mib(rss))

	// Both replicas must agree on the non-anonymized columns.
	a, err1 := queryInt(ctx, p.test.DSN("native"), "SELECT sum(score)::bigint + sum(balance * 100)::bigint FROM customers")
	b, err2 := queryInt(ctx, p.test.DSN("replica"), "SELECT sum(score)::bigint + sum(balance * 100)::bigint FROM customers")
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

// waitMarker polls customers id 1 on dsn until it holds the marker, returning the
// time since start.
func waitMarker(ctx context.Context, dsn string, start time.Time, limit time.Duration) (time.Duration, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	for time.Since(start) < limit {
		var score int64
		if err := c.QueryRow(ctx, "SELECT score FROM customers WHERE id = 1").Scan(&score); err != nil {
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

// waitSlot polls the slot's confirmed_flush_lsn until it reaches lsn.
func waitSlot(ctx context.Context, dsn, slot, lsn string, start time.Time, limit time.Duration) (time.Duration, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var ok bool
		err := c.QueryRow(ctx, "SELECT coalesce(confirmed_flush_lsn >= $2::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $1", slot, lsn).Scan(&ok)
		if err != nil {
			return 0, err
		}
		if ok {
			return time.Since(start), nil
		}
	}
	return 0, fmt.Errorf("slot %s did not confirm %s", slot, lsn)
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
	say("== lag under pgbench: -i -s %d, then -c %d -j %d -T %s (TPC-B-like, max rate) while understudy syncs",
		*scale, *clients, *threads, duration.String())
	p, err := startPair()
	if err != nil {
		return err
	}
	defer p.stop()
	prod := p.prod.DSN("pgb")
	if err := execSQL(ctx, p.prod.DSN("postgres"), "CREATE DATABASE pgb"); err != nil {
		return err
	}
	if err := execSQL(ctx, p.test.DSN("postgres"), "CREATE DATABASE replica"); err != nil {
		return err
	}
	pgbench := func(args ...string) *exec.Cmd {
		return exec.Command(filepath.Join(pgBin, "pgbench"), append(append(args, connArgs(p.prod, "pgb")[:6]...), "pgb")...)
	}
	if _, err := timed(pgbench("-i", "-q", "-s", strconv.Itoa(*scale)), "lag-pgbench-init.log"); err != nil {
		return err
	}
	if err := execSQL(ctx, prod, "CREATE TABLE heartbeat (id int PRIMARY KEY, ts timestamptz NOT NULL)",
		"INSERT INTO heartbeat VALUES (1, now())"); err != nil {
		return err
	}
	cfg, err := understudyConfig(filepath.Join(work, "lag"), prod, p.test.DSN("replica"),
		[]string{"public.pgbench_accounts", "public.pgbench_branches", "public.pgbench_tellers", "public.heartbeat"}, "")
	if err != nil {
		return err
	}
	load, err := timed(understudy(cfg, "load"), "lag-load.log")
	if err != nil {
		return err
	}
	say("understudy load of pgbench_accounts/branches/tellers (%d accounts): %s", *scale*100000, load.elapsed.Round(time.Millisecond))

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

	src, err := pgx.Connect(ctx, prod)
	if err != nil {
		return err
	}
	defer src.Close(context.Background())
	dst, err := pgx.Connect(ctx, p.test.DSN("replica"))
	if err != nil {
		return err
	}
	defer dst.Close(context.Background())
	beat := func() error { _, err := src.Exec(ctx, "UPDATE heartbeat SET ts = now() WHERE id = 1"); return err }
	read := func() (time.Duration, error) {
		var ts time.Time
		err := dst.QueryRow(ctx, "SELECT ts FROM heartbeat WHERE id = 1").Scan(&ts)
		return time.Since(ts), err
	}
	// Streaming is live once a heartbeat written now arrives.
	if err := beat(); err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if l, err := read(); err == nil && l < 2*time.Second {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("understudy sync did not start streaming within a minute (log: %s)", tailOf(logf.Name()))
		}
	}

	// pgbench at full speed; the heartbeat every 100 ms on production; a sample of
	// now() - heartbeat.ts on the target every 100 ms (pt-heartbeat style: includes
	// up to 100 ms of heartbeat period, so it errs high).
	bench := pgbench("-c", strconv.Itoa(*clients), "-j", strconv.Itoa(*threads), "-T", strconv.Itoa(int(duration.Seconds())), "-P", "5")
	var benchOut bytes.Buffer
	bench.Stdout, bench.Stderr = &benchOut, &benchOut
	if err := bench.Start(); err != nil {
		return err
	}
	benchDone := make(chan error, 1)
	go func() { benchDone <- bench.Wait() }()

	var (
		mu       sync.Mutex
		samples  []time.Duration
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
	t := time.NewTicker(100 * time.Millisecond)
	var benchErr error
	var maxLagAtEnd time.Duration
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
	if len(samples) > 0 {
		maxLagAtEnd = samples[len(samples)-1]
	}
	// After pgbench: how long until the replica is within 300 ms again.
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
		return fmt.Errorf("pgbench: %w: %s", benchErr, benchOut.String())
	}
	if beatErr != nil {
		return fmt.Errorf("heartbeat: %w", beatErr)
	}
	tps := "?"
	if m := regexp.MustCompile(`tps = ([0-9.]+) \(without initial`).FindStringSubmatch(benchOut.String()); m != nil {
		tps = m[1]
	}
	var progress []string
	sc := bufio.NewScanner(&benchOut)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "progress:") {
			progress = append(progress, sc.Text())
		}
	}
	slices.Sort(samples)
	pct := func(q float64) time.Duration {
		if len(samples) == 0 {
			return 0
		}
		return samples[min(len(samples)-1, int(q*float64(len(samples))))]
	}
	say("pgbench: tps %s; %d lag samples; last sample %s; back within 300 ms %s after pgbench ended", tps, len(samples),
		maxLagAtEnd.Round(time.Millisecond), drain.Round(time.Millisecond))
	for _, l := range progress {
		fmt.Println("    " + l)
	}
	p99 := pct(0.99)
	record(result{"lag under pgbench", fmt.Sprintf("lag p50 / p95 / p99 / max (pgbench %s tps, -c %d -j %d, %s)", tps, *clients, *threads, duration),
		fmt.Sprintf("%s / %s / %s / %s", ms(pct(0.50)), ms(pct(0.95)), ms(p99), ms(samples[len(samples)-1])), "", "", "p99 < 1 s", verdict(p99 < time.Second)})
	record(result{"lag under pgbench", "understudy sync peak RSS", mib(rss), "", "", "bounded", ""})
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
