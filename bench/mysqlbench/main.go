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
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/understudy/understudy/bench/internal/benchkit"
	"github.com/understudy/understudy/testenv"
)

var (
	f         benchkit.Flags
	sbTables  = flag.Int("sb-tables", 4, "lag: sysbench --tables")
	sbSize    = flag.Int("sb-size", 10_000, "lag: sysbench --table-size")
	sbThreads = flag.Int("sb-threads", 2, "lag: sysbench --threads")
	sbRate    = flag.Int("sb-rate", 0, "lag: sysbench --rate (transactions/s; 0 = as fast as it goes)")
)

var b *benchkit.Bench

func main() {
	f.Register(flag.CommandLine, "sysbench")
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
	if b, err = f.Open("understudy-mybench-"); err != nil {
		return err
	}
	defer b.Close()
	benchkit.Machine("mariadb")
	if err := b.RunScenarios(ctx, f.Scenario, []benchkit.Scenario{
		{Name: "bulk", Run: bulk},
		{Name: "backlog", Run: backlog},
		{Name: "lag", Run: lag},
		{Name: "memory", Run: memory},
	}); err != nil {
		return err
	}
	benchkit.Say("loadavg at the end: %s", benchkit.LoadAvg())
	return nil
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
	benchkit.Say("production MariaDB on 127.0.0.1:%d (server-id 1, ROW binlog), test MariaDB on 127.0.0.1:%d (server-id 2)", prod.Port, test.Port)
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
		benchkit.Say("seeded %d customers in %s", n, time.Since(start).Round(time.Millisecond))
	}
	return err
}

// ---------------------------------------------------------------- processes

// dumpCopy copies table data the baseline way, schema already on dst:
// mariadb-dump --no-create-info (extended inserts, its defaults) | mariadb.
func dumpCopy(src *testenv.MariaDBServer, srcDB string, dst *testenv.MariaDBServer, dstDB string, tables ...string) *exec.Cmd {
	dump := append(append([]string{"mariadb-dump"}, connArgs(src)...), "--no-create-info", "--single-transaction", srcDB)
	dump = append(dump, tables...)
	load := append(append([]string{"mariadb"}, connArgs(dst)...), dstDB)
	return benchkit.Shell(benchkit.ShellJoin(dump) + " | " + benchkit.ShellJoin(load))
}

// config writes the config of one benchmark run, the embedded mapping store
// beside it.
func config(name, source, target string, tables []string, rules string) (string, error) {
	return b.Config(name, benchkit.Pipeline{Source: source, Target: target, Tables: tables, Rules: rules})
}

// ---------------------------------------------------------------- 1. bulk load

func bulk(ctx context.Context) error {
	benchkit.Say("== bulk load: %d customers, 10 columns, 3 anonymized (last_name replace, email replace, ssn hash)", f.Rows)
	us, base, err := loadPair(ctx, f.Rows, "bulk", true)
	if err != nil {
		return err
	}
	b.RecordBulk(f.Rows, us, base, "(largest of dump, client)")
	return nil
}

func loadPair(ctx context.Context, n int, name string, withBaseline bool) (us, base benchkit.Stat, err error) {
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
		benchkit.Say("baseline: %s", cmd.Args[len(cmd.Args)-1])
		if base, err = b.Timed(cmd, name+"-baseline.log"); err != nil {
			return us, base, err
		}
		if got, err := queryInt(ctx, p.test, "baseline", "SELECT count(*) FROM customers"); err != nil || got != int64(n) {
			return us, base, fmt.Errorf("baseline copied %d rows, want %d (%v)", got, n, err)
		}
		benchkit.Say("baseline mariadb-dump | mariadb: %d rows in %s, peak RSS %s", n, base.Elapsed.Round(time.Millisecond), benchkit.MiB(base.MaxRSS))
	}
	cfg, err := config(name, p.prod.URL("bench"), p.test.URL("replica"), []string{"bench.customers"}, f.CustomerRules("bench.customers"))
	if err != nil {
		return us, base, err
	}
	if us, err = b.Load(cfg, name, n, f.Workers); err != nil {
		return us, base, err
	}
	if got, err := queryInt(ctx, p.test, "replica", "SELECT count(*) FROM customers"); err != nil || got != int64(n) {
		return us, base, fmt.Errorf("understudy loaded %d rows, want %d (%v)", got, n, err)
	}
	if f.Rules == "anon" {
		same, err := queryInt(ctx, p.test, "replica", "SELECT count(*) FROM customers WHERE email LIKE 'user%@corp.example'")
		if err != nil || same != 0 {
			return us, base, fmt.Errorf("%d target emails look like production's (%v)", same, err)
		}
	}
	benchkit.Say("understudy load: %d rows in %s, peak RSS %s (rules=%s)", n, us.Elapsed.Round(time.Millisecond), benchkit.MiB(us.MaxRSS), f.Rules)
	return us, base, nil
}

// ---------------------------------------------------------------- 4. memory

func memory(ctx context.Context) error {
	return b.Memory(f.Rows, func(n int, name string) error {
		_, _, err := loadPair(ctx, n, name, false)
		return err
	})
}

// ---------------------------------------------------------------- 2. backlog

func backlog(ctx context.Context) error {
	benchkit.Say("== backlog catch-up: %d changes as UPDATE … WHERE id BETWEEN transactions of %d rows over %d customers",
		f.Changes, f.TxnRows, f.BacklogRows)
	p, err := startPair()
	if err != nil {
		return err
	}
	defer p.stop()
	if err := execSQL(ctx, p.prod, "", "CREATE DATABASE bench"); err != nil {
		return err
	}
	if err := seedCustomers(ctx, p.prod, "bench", f.BacklogRows); err != nil {
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
	if _, err := b.Timed(dumpCopy(p.prod, "bench", p.test, "bench", "customers"), "backlog-native-copy.log"); err != nil {
		return err
	}
	// The ceiling: a third copy of the initial state, and the rows in memory.
	if err := execSQL(ctx, p.test, "", "CREATE DATABASE ceiling"); err != nil {
		return err
	}
	if err := execSQL(ctx, p.test, "ceiling", customersDDL); err != nil {
		return err
	}
	if _, err := b.Timed(dumpCopy(p.prod, "bench", p.test, "ceiling", "customers"), "backlog-ceiling-copy.log"); err != nil {
		return err
	}
	initial, err := readCeilingRows(ctx, p.prod)
	if err != nil {
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
	cfg, err := config("backlog", p.prod.URL("bench"), p.test.URL("replica"), []string{"bench.customers"}, f.CustomerRules("bench.customers"))
	if err != nil {
		return err
	}
	if _, err := b.Timed(b.Understudy(cfg, "load"), "backlog-load.log"); err != nil {
		return err
	}
	benchkit.Say("initial state in place on both targets (native replica stopped at gtid %s); generating the backlog", gtid)

	c, err := sql.Open("mysql", dsn(p.prod, "bench"))
	if err != nil {
		return err
	}
	start := time.Now()
	txns, err := benchkit.WriteBacklog(f.Changes, f.TxnRows, f.BacklogRows, func(lo, hi int) error {
		_, err := c.ExecContext(ctx, `UPDATE customers SET score = score + 1, balance = balance + 0.01 WHERE id BETWEEN ? AND ?`, lo, hi)
		return err
	})
	if err == nil {
		_, err = c.ExecContext(ctx, `UPDATE customers SET score = ? WHERE id = 1`, benchkit.Marker)
	}
	c.Close()
	if err != nil {
		return err
	}
	gen := time.Since(start)
	benchkit.Say("backlog: %d changes in %d transactions (+1 marker) written in %s (%.0f changes/s)",
		f.Changes, txns, gen.Round(time.Millisecond), float64(f.Changes)/gen.Seconds())

	// Native catch-up.
	start = time.Now()
	if err := execSQL(ctx, p.test, "", "START SLAVE"); err != nil {
		return err
	}
	nativeT, err := waitMarker(ctx, p.test, "bench", start, 30*time.Minute)
	if err != nil {
		return fmt.Errorf("native: %w", err)
	}
	benchkit.Say("native replica (START SLAVE): marker applied after %s", nativeT.Round(time.Millisecond))
	if err := execSQL(ctx, p.test, "", "STOP SLAVE"); err != nil {
		return err
	}

	ceilingT, err := backlogCeiling(ctx, p.test, initial)
	if err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}

	// understudy catch-up.
	start = time.Now()
	sync, err := b.StartSync(cfg, "backlog-sync.log")
	if err != nil {
		return err
	}
	defer sync.Stop()
	usT, err := waitMarker(ctx, p.test, "replica", start, 30*time.Minute)
	if err != nil {
		sync.Stop()
		return fmt.Errorf("understudy: %w (log: %s)", err, sync.Tail())
	}
	rss := sync.Stop()
	benchkit.Say("understudy sync: marker applied after %s, peak RSS %s", usT.Round(time.Millisecond), benchkit.MiB(rss))

	sum := "SELECT CAST(sum(score) + sum(balance * 100) AS SIGNED) FROM customers"
	x, err1 := queryInt(ctx, p.test, "bench", sum)
	y, err2 := queryInt(ctx, p.test, "replica", sum)
	if err := errors.Join(err1, err2); err != nil || x != y {
		return fmt.Errorf("targets differ after catch-up: native checksum %d, understudy %d (%v)", x, y, err)
	}
	b.RecordBacklog(f.Changes, f.TxnRows, usT, nativeT, rss)
	z, err := queryInt(ctx, p.test, "ceiling", sum)
	if err != nil || z != x {
		return fmt.Errorf("ceiling target differs from native: checksum %d, native %d (%v)", z, x, err)
	}
	b.RecordCeiling("backlog catch-up", fmt.Sprintf("pre-built 1,000-row upserts over %d connections", runtime.NumCPU()), f.Changes, ceilingT,
		float64(f.Changes)/nativeT.Seconds(), 1.0)
	return nil
}

// readCeilingRows reads production's customers, in id order, as the backlog
// ceiling replays them (SQL literals, NULL spelled out).
func readCeilingRows(ctx context.Context, s *testenv.MariaDBServer) ([]benchkit.CeilingRow, error) {
	c, err := sql.Open("mysql", dsn(s, "bench"))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rows, err := c.QueryContext(ctx, `SELECT id, first_name, last_name, email, ssn, phone, city, balance, score, created_at,
  CAST(balance * 100 AS SIGNED) FROM customers ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []benchkit.CeilingRow
	for rows.Next() {
		vals := make([]sql.NullString, 10)
		dest := make([]any, 11)
		for i := range vals {
			dest[i] = &vals[i]
		}
		var r benchkit.CeilingRow
		dest[10] = &r.BalanceCents
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		for _, v := range vals {
			if !v.Valid {
				r.Cols = append(r.Cols, "NULL")
				continue
			}
			r.Cols = append(r.Cols, "'"+strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v.String)+"'")
		}
		r.Score, _ = strconv.ParseInt(vals[8].String, 10, 64)
		out = append(out, r)
	}
	return out, rows.Err()
}

// backlogCeiling applies the backlog to the ceiling database the fastest way a
// tool can through SQL, minus the tool: per production transaction, its rows'
// final images as multi-row INSERT … ON DUPLICATE KEY UPDATE statements, built
// before the clock starts and split by id over one connection per core (so each
// row's updates stay in order). It returns the time taken.
func backlogCeiling(ctx context.Context, s *testenv.MariaDBServer, rows []benchkit.CeilingRow) (time.Duration, error) {
	conns := runtime.NumCPU()
	const upsert = ` ON DUPLICATE KEY UPDATE first_name = VALUES(first_name), last_name = VALUES(last_name), email = VALUES(email),
  ssn = VALUES(ssn), phone = VALUES(phone), city = VALUES(city), balance = VALUES(balance), score = VALUES(score), created_at = VALUES(created_at)`
	stmts := benchkit.BacklogBatches(f.Changes, f.TxnRows, rows, func(rs []benchkit.CeilingRow) []string {
		parts := make([][]string, conns)
		for _, r := range rs {
			cols := slices.Clone(r.Cols)
			cols[7], cols[8] = r.Balance(), strconv.FormatInt(r.Score, 10)
			id, _ := strconv.Atoi(strings.Trim(cols[0], "'"))
			parts[id%conns] = append(parts[id%conns], "("+strings.Join(cols, ",")+")")
		}
		out := make([]string, conns)
		for i, p := range parts {
			if len(p) > 0 {
				out[i] = "INSERT INTO customers VALUES " + strings.Join(p, ",") + upsert
			}
		}
		return out
	})
	db, err := sql.Open("mysql", dsn(s, "ceiling"))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(conns)
	start := time.Now()
	errs := make(chan error, conns)
	for k := range conns {
		go func() {
			for _, st := range stmts {
				if st[k] == "" {
					continue
				}
				if _, err := db.ExecContext(ctx, st[k]); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range conns {
		if e := <-errs; e != nil && err == nil {
			err = e
		}
	}
	elapsed := time.Since(start)
	if err != nil {
		return 0, err
	}
	benchkit.Say("ceiling (pre-built upserts over %d connections, no tool): %d transactions applied in %s", conns, len(stmts), elapsed.Round(time.Millisecond))
	return elapsed, nil
}

// waitMarker waits for the backlog's marker in customers of db, returning the
// time since start.
func waitMarker(ctx context.Context, s *testenv.MariaDBServer, db string, start time.Time, limit time.Duration) (time.Duration, error) {
	c, err := sql.Open("mysql", dsn(s, db))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return benchkit.WaitMarker(ctx, start, limit, func() (score int64, err error) {
		err = c.QueryRowContext(ctx, "SELECT score FROM customers WHERE id = 1").Scan(&score)
		return score, err
	})
}

// ---------------------------------------------------------------- 3. lag

func lag(ctx context.Context) error {
	rate := "max rate"
	if *sbRate > 0 {
		rate = fmt.Sprintf("--rate=%d", *sbRate)
	}
	benchkit.Say("== lag under sysbench oltp_write_only --tables=%d --table-size=%d --threads=%d --time=%s (%s) while understudy syncs",
		*sbTables, *sbSize, *sbThreads, f.Duration.String(), rate)
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
	if _, err := b.Timed(sysbench("prepare"), "lag-sysbench-prepare.log"); err != nil {
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
	cfg, err := config("lag", p.prod.URL("sb"), p.test.URL("replica"), tables, rules)
	if err != nil {
		return err
	}
	sync, err := b.StartSync(cfg, "lag-sync.log")
	if err != nil {
		return err
	}
	defer sync.Stop()
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
			return fmt.Errorf("understudy sync did not start streaming within 2 minutes (log: %s)", sync.Tail())
		}
	}
	args := []string{"run", "--time=" + strconv.Itoa(int(f.Duration.Seconds())), "--threads=" + strconv.Itoa(*sbThreads), "--report-interval=5"}
	if *sbRate > 0 {
		args = append(args, "--rate="+strconv.Itoa(*sbRate))
	}
	l, err := benchkit.MeasureLag(sysbench(args...), beat, read)
	if err != nil {
		return err
	}
	rss := sync.Stop()
	tps := "?"
	if m := regexp.MustCompile(`transactions:\s+\d+\s+\(([\d.]+) per sec`).FindStringSubmatch(l.Output); m != nil {
		tps = m[1]
	}
	for _, line := range strings.Split(l.Output, "\n") {
		if strings.HasPrefix(line, "[ ") {
			fmt.Println("    " + line)
		}
	}
	// The worst lag of every 5 s, to tell a steady lag from a stall.
	var windows []string
	for i := 0; i < len(l.Samples); i += 50 {
		windows = append(windows, benchkit.Ms(slices.Max(l.Samples[i:min(i+50, len(l.Samples))])))
	}
	benchkit.Say("max lag per 5 s since sysbench started at %s: %s", l.Start.Format("15:04:05"), strings.Join(windows, ", "))
	if os.Getenv("MYSQLBENCH_TRACE") != "" {
		var first []string
		for _, d := range l.Samples[:min(50, len(l.Samples))] {
			first = append(first, strconv.FormatInt(d.Milliseconds(), 10))
		}
		benchkit.Say("first 5 s of lag samples (ms): %s", strings.Join(first, " "))
	}
	benchkit.Say("sysbench: %s tps; %d lag samples; back within 300 ms %s after sysbench ended", tps, len(l.Samples), l.Drain.Round(time.Millisecond))
	b.RecordLag("lag under sysbench", fmt.Sprintf("oltp_write_only %s tps, %d threads, %s, %s", tps, *sbThreads, rate, f.Duration), l, rss)
	return nil
}
