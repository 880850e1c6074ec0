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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/understudy/understudy/bench/internal/benchkit"
	"github.com/understudy/understudy/testenv"
)

const pgBin = "/usr/lib/postgresql/15/bin"

var (
	f        benchkit.Flags
	scale    = flag.Int("scale", 10, "lag: pgbench -i scale factor")
	clients  = flag.Int("clients", 4, "lag: pgbench -c")
	threads  = flag.Int("threads", 2, "lag: pgbench -j")
	mappings = flag.String("mappings", "file", "mapping store for understudy: file (embedded Pebble) or redis (a redis-server started here)")
)

var (
	b     *benchkit.Bench
	redis *testenv.RedisServer
)

func main() {
	f.Register(flag.CommandLine, "pgbench")
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
	if b, err = f.Open("understudy-bench-"); err != nil {
		return err
	}
	defer b.Close()
	if *mappings == "redis" {
		if redis, err = testenv.StartRedis(""); err != nil {
			return err
		}
		defer redis.Stop()
	} else if *mappings != "file" {
		return fmt.Errorf("-mappings %q: use file or redis", *mappings)
	}
	benchkit.Machine(filepath.Join(pgBin, "postgres"), "mappings="+*mappings)
	return b.RunScenarios(ctx, f.Scenario, []benchkit.Scenario{
		{Name: "bulk", Run: bulk},
		{Name: "backlog", Run: backlog},
		{Name: "lag", Run: lag},
		{Name: "memory", Run: memory},
	})
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
	benchkit.Say("production Postgres on 127.0.0.1:%d (wal_level=logical), test Postgres on 127.0.0.1:%d", prod.Port, test.Port)
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
		benchkit.Say("seeded %d customers in %s", n, time.Since(start).Round(time.Millisecond))
	}
	return err
}

// ---------------------------------------------------------------- processes

// pgCopy copies table data from src.db to dst.db the baseline way, schema already
// present on dst: pg_dump --data-only | psql.
func pgCopy(src *testenv.PostgresServer, srcDB string, dst *testenv.PostgresServer, dstDB string, tables ...string) *exec.Cmd {
	dump := append([]string{filepath.Join(pgBin, "pg_dump"), "--data-only"}, connArgs(src, srcDB)...)
	for _, t := range tables {
		dump = append(dump, "-t", t)
	}
	psql := append([]string{filepath.Join(pgBin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"}, connArgs(dst, dstDB)...)
	return benchkit.Shell(benchkit.ShellJoin(dump) + " | " + benchkit.ShellJoin(psql) + " >/dev/null")
}

// config writes the config of one benchmark run; with -mappings redis, each
// gets a Redis database of its own, so runs never share mappings.
func config(name, source, target string, tables []string, rules string) (string, error) {
	p := benchkit.Pipeline{Source: source, Target: target, Tables: tables, Rules: rules}
	if redis != nil {
		redisDB++
		p.Mappings = fmt.Sprintf("redis://%s/%d", redis.Addr, redisDB)
	}
	return b.Config(name, p)
}

var redisDB int

// ---------------------------------------------------------------- 1. bulk load

func bulk(ctx context.Context) error {
	benchkit.Say("== bulk load: %d customers, 10 columns, 3 anonymized (last_name replace, email replace, ssn hash), mappings=%s", f.Rows, *mappings)
	us, base, err := loadPair(ctx, f.Rows, "bulk", true)
	if err != nil {
		return err
	}
	b.RecordBulk(f.Rows, us, base, "(max of pg_dump, psql)")
	return nil
}

// loadPair seeds n customers and loads them into the test server with understudy
// and (when withBaseline) with pg_dump | psql.
func loadPair(ctx context.Context, n int, name string, withBaseline bool) (us, base benchkit.Stat, err error) {
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
		benchkit.Say("baseline: %s", strings.Join(cmd.Args[3:], " "))
		if base, err = b.Timed(cmd, name+"-baseline.log"); err != nil {
			return us, base, err
		}
		if got, err := queryInt(ctx, p.test.DSN("baseline"), "SELECT count(*) FROM customers"); err != nil || got != int64(n) {
			return us, base, fmt.Errorf("baseline copied %d rows, want %d (%v)", got, n, err)
		}
		benchkit.Say("baseline pg_dump | psql: %d rows in %s, peak RSS %s", n, base.Elapsed.Round(time.Millisecond), benchkit.MiB(base.MaxRSS))
		if err := bulkCeiling(ctx, p, n, base); err != nil {
			return us, base, err
		}
		// Leave the test server as the understudy run will find it.
		if err := execSQL(ctx, p.test.DSN("postgres"), "CHECKPOINT"); err != nil {
			return us, base, err
		}
	}
	cfg, err := config(name, p.prod.DSN("bench"), p.test.DSN("replica"), []string{"public.customers"}, f.CustomerRules("public.customers"))
	if err != nil {
		return us, base, err
	}
	if us, err = b.Load(cfg, name, n, f.Workers); err != nil {
		return us, base, err
	}
	if got, err := queryInt(ctx, p.test.DSN("replica"), "SELECT count(*) FROM customers"); err != nil || got != int64(n) {
		return us, base, fmt.Errorf("understudy loaded %d rows, want %d (%v)", got, n, err)
	}
	// Honesty check: the anonymized columns really changed.
	if f.Rules != "anon" {
		benchkit.Say("understudy load: %d rows in %s, peak RSS %s (rules=%s)", n, us.Elapsed.Round(time.Millisecond), benchkit.MiB(us.MaxRSS), f.Rules)
		return us, base, nil
	}
	same, err := queryInt(ctx, p.test.DSN("replica"), "SELECT count(*) FROM customers WHERE email LIKE 'user%@corp.example'")
	if err != nil || same != 0 {
		return us, base, fmt.Errorf("%d target emails look like production's (%v)", same, err)
	}
	benchkit.Say("understudy load: %d rows in %s, peak RSS %s", n, us.Elapsed.Round(time.Millisecond), benchkit.MiB(us.MaxRSS))
	return us, base, nil
}

// bulkCeiling times the fastest copy of the seeded customers into the test
// server that involves no tool at all: one `COPY (SELECT …) TO STDOUT | COPY …
// FROM STDIN` pipe per core over id ranges, into a table without its primary
// key, which is built afterwards (what pg_restore does). Nothing decodes a value
// and nothing is anonymized, so no tool can load the same rows faster here.
func bulkCeiling(ctx context.Context, p *pair, n int, base benchkit.Stat) error {
	if err := execSQL(ctx, p.test.DSN("postgres"), "CREATE DATABASE ceiling"); err != nil {
		return err
	}
	if err := execSQL(ctx, p.test.DSN("ceiling"), strings.Replace(customersDDL, "id bigint PRIMARY KEY", "id bigint NOT NULL", 1), "CHECKPOINT"); err != nil {
		return err
	}
	streams := runtime.NumCPU()
	psql := func(s *testenv.PostgresServer, db, sql string) string {
		return benchkit.ShellJoin(append(append([]string{filepath.Join(pgBin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"}, connArgs(s, db)...), "-c", sql))
	}
	var script []string
	per := (n + streams - 1) / streams
	for i := range streams {
		lo, hi := i*per+1, min((i+1)*per, n)
		script = append(script, psql(p.prod, "bench", fmt.Sprintf("COPY (SELECT * FROM customers WHERE id BETWEEN %d AND %d) TO STDOUT", lo, hi))+
			" | "+psql(p.test, "ceiling", "COPY customers FROM STDIN")+" &")
	}
	script = append(script, "wait", psql(p.test, "ceiling", "ALTER TABLE customers ADD PRIMARY KEY (id)"))
	st, err := b.Timed(benchkit.Shell(strings.Join(script, "\n")), "bulk-ceiling.log")
	if err != nil {
		return err
	}
	if got, err := queryInt(ctx, p.test.DSN("ceiling"), "SELECT count(*) FROM customers"); err != nil || got != int64(n) {
		return fmt.Errorf("ceiling copied %d rows, want %d (%v)", got, n, err)
	}
	b.RecordCeiling("bulk load", fmt.Sprintf("%d parallel raw COPY pipes, PK built after", streams), n, st.Elapsed,
		float64(n)/base.Elapsed.Seconds(), 1.5)
	return execSQL(ctx, p.test.DSN("postgres"), "DROP DATABASE ceiling", "CHECKPOINT")
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
	prod := p.prod.DSN("bench")
	if err := execSQL(ctx, p.prod.DSN("postgres"), "CREATE DATABASE bench"); err != nil {
		return err
	}
	if err := execSQL(ctx, p.test.DSN("postgres"), "CREATE DATABASE native", "CREATE DATABASE replica"); err != nil {
		return err
	}
	if err := seedCustomers(ctx, prod, f.BacklogRows); err != nil {
		return err
	}

	// Native: same schema and data, a disabled subscription whose slot is created now.
	if err := execSQL(ctx, p.test.DSN("native"), customersDDL); err != nil {
		return err
	}
	if _, err := b.Timed(pgCopy(p.prod, "bench", p.test, "native", "public.customers"), "backlog-native-copy.log"); err != nil {
		return err
	}
	// The ceiling: a third copy of the initial state, and the rows in memory.
	if err := execSQL(ctx, p.test.DSN("postgres"), "CREATE DATABASE ceiling"); err != nil {
		return err
	}
	if err := execSQL(ctx, p.test.DSN("ceiling"), customersDDL); err != nil {
		return err
	}
	if _, err := b.Timed(pgCopy(p.prod, "bench", p.test, "ceiling", "public.customers"), "backlog-ceiling-copy.log"); err != nil {
		return err
	}
	initial, err := readCeilingRows(ctx, prod)
	if err != nil {
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
	cfg, err := config("backlog", prod, p.test.DSN("replica"), []string{"public.customers"}, f.CustomerRules("public.customers"))
	if err != nil {
		return err
	}
	if _, err := b.Timed(b.Understudy(cfg, "load"), "backlog-load.log"); err != nil {
		return err
	}
	benchkit.Say("initial state in place on both targets; both slots exist; generating the backlog")

	// The backlog.
	c, err := pgx.Connect(ctx, prod)
	if err != nil {
		return err
	}
	start := time.Now()
	txns, err := benchkit.WriteBacklog(f.Changes, f.TxnRows, f.BacklogRows, func(lo, hi int) error {
		_, err := c.Exec(ctx, `UPDATE customers SET score = score + 1, balance = balance + 0.01 WHERE id BETWEEN $1 AND $2`, lo, hi)
		return err
	})
	if err == nil {
		_, err = c.Exec(ctx, `UPDATE customers SET score = $1 WHERE id = 1`, benchkit.Marker)
	}
	var endLSN string
	if err == nil {
		err = c.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&endLSN)
	}
	c.Close(ctx)
	if err != nil {
		return err
	}
	gen := time.Since(start)
	var walBytes int64
	walBytes, _ = queryInt(ctx, prod, "SELECT pg_wal_lsn_diff($1::pg_lsn, confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = 'bench_sub'", endLSN)
	benchkit.Say("backlog: %d changes in %d transactions (+1 marker) written in %s (%.0f changes/s); %.0f MiB of WAL; end LSN %s",
		f.Changes, txns, gen.Round(time.Millisecond), float64(f.Changes)/gen.Seconds(), float64(walBytes)/(1<<20), endLSN)

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
	benchkit.Say("native logical replication: marker applied after %s (slot confirmed_flush ≥ end LSN after %s)",
		nativeT.Round(time.Millisecond), flushT.Round(time.Millisecond))
	if err := execSQL(ctx, p.test.DSN("native"), "ALTER SUBSCRIPTION bench_sub DISABLE"); err != nil {
		return err
	}

	ceilingT, err := backlogCeiling(ctx, p.test.DSN("ceiling"), initial)
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
	usT, err := waitMarker(ctx, p.test.DSN("replica"), start, 30*time.Minute)
	if err != nil {
		sync.Stop()
		return fmt.Errorf("understudy: %w (log: %s)", err, sync.Tail())
	}
	usFlush, _ := waitSlot(ctx, prod, "understudy_bench", endLSN, start, 30*time.Second)
	rss := sync.Stop()
	benchkit.Say("understudy sync: marker applied after %s (slot confirmed_flush ≥ end LSN after %s), peak RSS %s",
		usT.Round(time.Millisecond), usFlush.Round(time.Millisecond), benchkit.MiB(rss))

	// Both replicas must agree on the non-anonymized columns.
	x, err1 := queryInt(ctx, p.test.DSN("native"), "SELECT sum(score)::bigint + sum(balance * 100)::bigint FROM customers")
	y, err2 := queryInt(ctx, p.test.DSN("replica"), "SELECT sum(score)::bigint + sum(balance * 100)::bigint FROM customers")
	if err := errors.Join(err1, err2); err != nil || x != y {
		return fmt.Errorf("targets differ after catch-up: native checksum %d, understudy %d (%v)", x, y, err)
	}
	b.RecordBacklog(f.Changes, f.TxnRows, usT, nativeT, rss)
	z, err := queryInt(ctx, p.test.DSN("ceiling"), "SELECT sum(score)::bigint + sum(balance * 100)::bigint FROM customers")
	if err != nil || z != x {
		return fmt.Errorf("ceiling target differs from native: checksum %d, native %d (%v)", z, x, err)
	}
	b.RecordCeiling("backlog catch-up", "pre-built COPY + upsert per transaction, 1 connection", f.Changes, ceilingT,
		float64(f.Changes)/nativeT.Seconds(), 1.0)
	return nil
}

// readCeilingRows reads production's customers, in id order, as the backlog
// ceiling replays them.
func readCeilingRows(ctx context.Context, dsn string) ([]benchkit.CeilingRow, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT ARRAY[id::text, first_name, last_name, email, ssn, phone, city, balance::text, score::text, created_at::text],
  (balance * 100)::bigint, score FROM customers ORDER BY id`)
	if err != nil {
		return nil, err
	}
	var out []benchkit.CeilingRow
	for rows.Next() {
		var cols []*string
		var r benchkit.CeilingRow
		if err := rows.Scan(&cols, &r.BalanceCents, &r.Score); err != nil {
			return nil, err
		}
		for _, v := range cols {
			if v == nil {
				r.Cols = append(r.Cols, `\N`)
			} else {
				r.Cols = append(r.Cols, *v)
			}
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// backlogCeiling applies the backlog to dsn the way understudy's Postgres sink
// does, minus understudy: per production transaction, its rows' final images
// COPYed into a staging table and upserted in one transaction, all payloads
// built before the clock starts. It returns the time taken.
func backlogCeiling(ctx context.Context, dsn string, rows []benchkit.CeilingRow) (time.Duration, error) {
	payloads := benchkit.BacklogBatches(f.Changes, f.TxnRows, rows, func(rs []benchkit.CeilingRow) []byte {
		var buf []byte
		for _, r := range rs {
			for i, v := range r.Cols {
				switch i {
				case 7:
					v = r.Balance()
				case 8:
					v = strconv.FormatInt(r.Score, 10)
				}
				if i > 0 {
					buf = append(buf, '\t')
				}
				buf = append(buf, v...)
			}
			buf = append(buf, '\n')
		}
		return buf
	})
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "CREATE TEMP TABLE stage (LIKE customers) ON COMMIT DELETE ROWS"); err != nil {
		return 0, err
	}
	upsert := `INSERT INTO customers SELECT * FROM stage ON CONFLICT (id) DO UPDATE SET first_name = EXCLUDED.first_name,
  last_name = EXCLUDED.last_name, email = EXCLUDED.email, ssn = EXCLUDED.ssn, phone = EXCLUDED.phone, city = EXCLUDED.city,
  balance = EXCLUDED.balance, score = EXCLUDED.score, created_at = EXCLUDED.created_at`
	if err := execSQL(ctx, dsn, "CHECKPOINT"); err != nil {
		return 0, err
	}
	start := time.Now()
	for _, data := range payloads {
		tx, err := c.Begin(ctx)
		if err != nil {
			return 0, err
		}
		if _, err := c.PgConn().CopyFrom(ctx, bytes.NewReader(data), "COPY stage FROM STDIN"); err != nil {
			tx.Rollback(ctx)
			return 0, err
		}
		if _, err := tx.Exec(ctx, upsert); err != nil {
			tx.Rollback(ctx)
			return 0, err
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, err
		}
	}
	elapsed := time.Since(start)
	benchkit.Say("ceiling (pre-built COPY + upsert, no tool): %d transactions applied in %s", len(payloads), elapsed.Round(time.Millisecond))
	return elapsed, nil
}

// waitMarker waits for the backlog's marker in customers on dsn, returning the
// time since start.
func waitMarker(ctx context.Context, dsn string, start time.Time, limit time.Duration) (time.Duration, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer c.Close(context.Background())
	return benchkit.WaitMarker(ctx, start, limit, func() (score int64, err error) {
		err = c.QueryRow(ctx, "SELECT score FROM customers WHERE id = 1").Scan(&score)
		return score, err
	})
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

// ---------------------------------------------------------------- 3. lag

func lag(ctx context.Context) error {
	benchkit.Say("== lag under pgbench: -i -s %d, then -c %d -j %d -T %s (TPC-B-like, max rate) while understudy syncs",
		*scale, *clients, *threads, f.Duration.String())
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
	if _, err := b.Timed(pgbench("-i", "-q", "-s", strconv.Itoa(*scale)), "lag-pgbench-init.log"); err != nil {
		return err
	}
	if err := execSQL(ctx, prod, "CREATE TABLE heartbeat (id int PRIMARY KEY, ts timestamptz NOT NULL)",
		"INSERT INTO heartbeat VALUES (1, now())"); err != nil {
		return err
	}
	cfg, err := config("lag", prod, p.test.DSN("replica"),
		[]string{"public.pgbench_accounts", "public.pgbench_branches", "public.pgbench_tellers", "public.heartbeat"}, "")
	if err != nil {
		return err
	}
	load, err := b.Timed(b.Understudy(cfg, "load"), "lag-load.log")
	if err != nil {
		return err
	}
	benchkit.Say("understudy load of pgbench_accounts/branches/tellers (%d accounts): %s", *scale*100000, load.Elapsed.Round(time.Millisecond))

	sync, err := b.StartSync(cfg, "lag-sync.log")
	if err != nil {
		return err
	}
	defer sync.Stop()

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
			return fmt.Errorf("understudy sync did not start streaming within a minute (log: %s)", sync.Tail())
		}
	}

	// pgbench at full speed while the heartbeat measures the lag.
	l, err := benchkit.MeasureLag(pgbench("-c", strconv.Itoa(*clients), "-j", strconv.Itoa(*threads), "-T", strconv.Itoa(int(f.Duration.Seconds())), "-P", "5"),
		beat, read)
	if err != nil {
		return err
	}
	rss := sync.Stop()
	tps := "?"
	if m := regexp.MustCompile(`tps = ([0-9.]+) \(without initial`).FindStringSubmatch(l.Output); m != nil {
		tps = m[1]
	}
	benchkit.Say("pgbench: tps %s; %d lag samples; last sample %s; back within 300 ms %s after pgbench ended", tps, len(l.Samples),
		l.Samples[len(l.Samples)-1].Round(time.Millisecond), l.Drain.Round(time.Millisecond))
	for _, line := range strings.Split(l.Output, "\n") {
		if strings.HasPrefix(line, "progress:") {
			fmt.Println("    " + line)
		}
	}
	b.RecordLag("lag under pgbench", fmt.Sprintf("pgbench %s tps, -c %d -j %d, %s", tps, *clients, *threads, f.Duration), l, rss)
	return nil
}
