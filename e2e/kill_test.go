package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const ledgerPipeline = `
  - name: ledger
    source: ${PROD_URL}
    target: ${TEST_URL}
    tables: [public.ledger]
    rules:
      public.ledger:
        owner: {replace: last_name, domain: surname}
        memo: hash
`

// ledgerSchema is one table of rows generated in production; rows is appended.
const ledgerSchema = `
CREATE TABLE ledger (
  id bigint PRIMARY KEY,
  owner text,
  amount numeric(12,2) NOT NULL,
  memo text,
  booked_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ledger (id, owner, amount, memo, booked_at)
SELECT g, CASE WHEN g %% 17 = 0 THEN NULL ELSE 'Owner ' || (g %% 5000) END, (g %% 100000) / 100.0,
       'memo ' || md5(g::text), timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
FROM generate_series(1, %d) g;
ANALYZE ledger;
`

// loadStatus is `understudy status --json` of one pipeline.
type loadStatus struct {
	State, Detail string
	done, total   int
}

var chunksRe = regexp.MustCompile(`(\d+)/(\d+) chunks`)

// status runs `understudy status --json` and returns the first pipeline's status.
func (e *env) status() (loadStatus, error) {
	code, out, errOut := e.run("status", "--json")
	if code != 0 {
		return loadStatus{}, fmt.Errorf("status exit %d: %s", code, errOut)
	}
	var all []struct{ State, Detail string }
	if err := json.Unmarshal([]byte(out), &all); err != nil || len(all) != 1 {
		return loadStatus{}, fmt.Errorf("status --json: %v: %s", err, out)
	}
	st := loadStatus{State: all[0].State, Detail: all[0].Detail}
	if m := chunksRe.FindStringSubmatch(st.Detail); m != nil {
		st.done, _ = strconv.Atoi(m[1])
		st.total, _ = strconv.Atoi(m[2])
	}
	return st, nil
}

// TestKillDuringLoad SIGKILLs a load once its checkpoint shows finished chunks, and
// checks that the restarted load resumes from them and ends with the target equal
// to transform(source): every row once, nothing lost.
func TestKillDuringLoad(t *testing.T) {
	const rows = 500_000
	e := newEnv(t, fmt.Sprintf(ledgerSchema, rows), "", ledgerPipeline)

	// One worker: chunks (about 100k rows each) finish one after another, so the
	// kill lands with some done and some not.
	load := e.start("load", "--workers", "1")
	var st loadStatus
	waitFor(t, 2*time.Minute, "load checkpoint with a finished chunk", load, func() bool {
		var err error
		st, err = e.status()
		return err == nil && st.State == "loading" && st.done >= 1
	})
	load.kill9(t)
	if st.done >= st.total {
		t.Fatalf("every chunk was done before the kill (%s); the table is too small to test a resume", st.Detail)
	}
	partial := count(e.test, "ledger")
	after, err := e.status()
	if err != nil {
		t.Fatal(err)
	}
	if after.State != "loading" || after.done < st.done {
		t.Fatalf("after kill -9 the checkpoint says %s (%s), before it said %d/%d chunks", after.State, after.Detail, st.done, st.total)
	}
	t.Logf("killed load at %s; target had %d of %d rows", after.Detail, partial, rows)

	start := time.Now()
	code, out, errOut := e.run("load", "--workers", "1")
	if code != 0 {
		t.Fatalf("restarted load: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("resumed load took %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(errOut, "resuming initial load") || !strings.Contains(errOut, fmt.Sprintf("chunks_done=%d", after.done)) {
		t.Errorf("the restarted load did not resume from the %d finished chunk(s):\n%s", after.done, tail(errOut))
	}
	if got := count(e.test, "ledger"); got != rows {
		t.Errorf("target has %d rows, production %d", got, rows)
	}
	if n := scalar(t, e.test, `SELECT count(*) - count(DISTINCT id) FROM ledger`); n != "0" {
		t.Errorf("%s duplicate keys in the target", n)
	}
	if code, out := e.verify(); code != 0 {
		t.Fatalf("verify after the resumed load: exit %d\n%s", code, out)
	}
	if st, err := e.status(); err != nil || st.State != "streaming" {
		t.Errorf("status after the load: %+v %v, want streaming", st, err)
	}
}

// writer changes production continuously: small transactions of inserts,
// updates and deletes, and on request one large transaction.
type writer struct {
	dsn    string
	nextID atomic.Int64
	big    chan struct{} // a receive runs the large transaction
	bigAt  int64         // first id of the large transaction
	bigN   int64
	txns   atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error
}

func startWriter(t *testing.T, dsn string, firstID, bigAt, bigN int64) *writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &writer{dsn: dsn, big: make(chan struct{}, 1), bigAt: bigAt, bigN: bigN, cancel: cancel}
	w.nextID.Store(firstID)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.err = w.run(ctx)
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

// stop ends the writes and returns the writer's error, if any.
func (w *writer) stop() error {
	w.cancel()
	w.wg.Wait()
	return w.err
}

func (w *writer) run(ctx context.Context) error {
	conn, err := connect(ctx, w.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for i := int64(0); ; i++ {
		if ctx.Err() != nil {
			return nil
		}
		var stmts []string
		select {
		case <-w.big:
			stmts = []string{
				fmt.Sprintf(`INSERT INTO ledger (id, owner, amount, memo) SELECT g, 'Big ' || (g %% 3000), g %% 1000, 'big ' || g FROM generate_series(%d, %d) g`, w.bigAt, w.bigAt+w.bigN-1),
				`UPDATE ledger SET amount = amount + 1, memo = memo || '+' WHERE id % 10 = 3 AND id < 100000`,
				`DELETE FROM ledger WHERE id % 10 = 4 AND id < 20000`,
			}
		default:
			id := w.nextID.Add(3) - 3
			stmts = []string{
				fmt.Sprintf(`INSERT INTO ledger (id, owner, amount, memo) VALUES (%d, 'New %d', 1.5, 'n'), (%d, NULL, 2, ''), (%d, 'Owner 7', -3, NULL)`, id, i%50, id+1, id+2),
				fmt.Sprintf(`UPDATE ledger SET owner = 'Moved %d', amount = amount - 1 WHERE id = %d`, i%80, 1+(i*13)%20000),
				fmt.Sprintf(`DELETE FROM ledger WHERE id = %d`, 1+(i*7919)%20000),
				fmt.Sprintf(`DELETE FROM ledger WHERE id = %d`, id-30), // a row this writer inserted earlier
			}
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return ignoreCancel(ctx, err)
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				tx.Rollback(context.Background())
				return ignoreCancel(ctx, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return ignoreCancel(ctx, err)
		}
		w.txns.Add(1)
		// Pace the writes (a few hundred transactions a second): this is load
		// shaping, not synchronization.
		time.Sleep(2 * time.Millisecond)
	}
}

func ignoreCancel(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// waitConverged polls until the target's fingerprint (fp: one row of aggregates
// over columns the rules keep or whose shape they keep) equals production's; when
// verifyToo is set it also requires `understudy verify` to exit 0, which needs a
// mapping store that several processes may open at once (redis://): the embedded
// file store belongs to the running sync.
func waitConverged(t *testing.T, e *env, fp string, verifyToo bool, alive *proc, d time.Duration) {
	t.Helper()
	start := time.Now()
	var last string
	for {
		if alive != nil && !alive.running() {
			t.Fatalf("waiting for convergence: understudy %s exited:\n%s", alive.name, alive.output())
		}
		want, err1 := tryQuery(e.prod, fp)
		got, err2 := tryQuery(e.test, fp)
		if err1 == nil && err2 == nil && fingerprint(want) == fingerprint(got) {
			if !verifyToo {
				t.Logf("converged %s after the writes stopped", time.Since(start).Round(time.Millisecond))
				return
			}
			code, out := e.verify()
			if code == 0 {
				t.Logf("converged and verified %s after the writes stopped", time.Since(start).Round(time.Millisecond))
				return
			}
			last = out
		} else {
			last = fmt.Sprintf("production %s (%v), target %s (%v)", fingerprint(want), err1, fingerprint(got), err2)
		}
		if time.Since(start) > d {
			t.Fatalf("target not equal to transform(production) within %s; last check:\n%s", d, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func fingerprint(rows [][]*string) string {
	var parts []string
	for _, r := range rows {
		for _, v := range r {
			parts = append(parts, str(v))
		}
	}
	return strings.Join(parts, "|")
}

// ledgerFingerprint aggregates what the ledger rules keep: keys, amounts, the
// NULL-ness of owner and the width of the hashed memo.
const ledgerFingerprint = `SELECT count(*), sum(id), sum(amount), count(owner), sum(length(memo)), count(memo) FROM ledger`

// TestKillDuringSync SIGKILLs sync while production changes (a large transaction
// in flight), restarts it, and checks that it converges on transform(production)
// and then stops cleanly and quickly on SIGTERM.
func TestKillDuringSync(t *testing.T) {
	const seeded = 20_000
	e := newEnv(t, fmt.Sprintf(ledgerSchema, seeded), "", ledgerPipeline)

	sync1 := e.start("sync")
	waitFor(t, time.Minute, "initial load by sync", sync1, func() bool {
		return count(e.test, "ledger") == seeded
	})
	const bigAt, bigN = 10_000_000, 20_000
	w := startWriter(t, e.prod, 1_000_000, bigAt, bigN)
	// Streaming works before the kill: the writer's rows arrive.
	waitFor(t, time.Minute, "streamed inserts", sync1, func() bool {
		return count(e.test, "ledger WHERE id >= 1000000 AND id < 10000000") > 30
	})
	w.big <- struct{}{}
	waitFor(t, time.Minute, "the large transaction reaching the target", sync1, func() bool {
		return count(e.test, fmt.Sprintf("ledger WHERE id >= %d", bigAt)) > 0
	})
	sync1.kill9(t)
	t.Logf("killed sync with %d of the large transaction's %d rows in the target, %d writer transactions so far",
		count(e.test, fmt.Sprintf("ledger WHERE id >= %d", bigAt)), bigN, w.txns.Load())

	sync2 := e.start("sync")
	// The restarted sync streams again while the writes go on.
	mark := w.nextID.Load()
	waitFor(t, time.Minute, "streaming after the restart", sync2, func() bool {
		return count(e.test, fmt.Sprintf("ledger WHERE id >= %d AND id < %d", mark, bigAt)) > 0
	})
	if err := w.stop(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	t.Logf("writer committed %d transactions", w.txns.Load())
	waitConverged(t, e, ledgerFingerprint, false, sync2, 2*time.Minute)
	if n := count(e.test, fmt.Sprintf("ledger WHERE id >= %d", bigAt)); n != bigN {
		t.Errorf("target has %d rows of the large transaction, want %d", n, bigN)
	}

	took := sync2.stop(t, 10*time.Second)
	t.Logf("sync stopped %s after SIGTERM", took.Round(time.Millisecond))
	if !strings.Contains(readFile(sync2.stderr), "stopped cleanly") {
		t.Errorf("sync did not log a clean stop:\n%s", tail(readFile(sync2.stderr)))
	}
	if code, out := e.verify(); code != 0 {
		t.Fatalf("verify after the stop: exit %d\n%s", code, out)
	}
}
