package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const myLedgerPipeline = `
  - name: ledger
    source: ${PROD_URL}
    target: ${TEST_URL}
    tables: [PROD.ledger]
    rules:
      PROD.ledger:
        owner: {replace: last_name, domain: surname}
        memo: hash
`

const myLedgerSchema = `
CREATE TABLE ledger (
  id bigint unsigned NOT NULL PRIMARY KEY,
  owner varchar(60),
  amount decimal(12,2) NOT NULL,
  memo varchar(64),
  booked_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) DEFAULT CHARSET=utf8mb4;
INSERT INTO ledger (id, owner, amount, memo, booked_at)
SELECT seq, IF(seq %% 17 = 0, NULL, CONCAT('Owner ', seq %% 5000)), (seq %% 100000) / 100,
       CONCAT('memo ', MD5(seq)), TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq SECOND
FROM seq_1_to_%d;
`

// myLedgerFingerprint aggregates what the ledger rules keep.
const myLedgerFingerprint = `SELECT count(*), sum(id), sum(amount), count(owner), sum(length(memo)), count(memo) FROM ledger`

// TestMySQLKillDuringLoad SIGKILLs a MariaDB load once its checkpoint shows a
// finished chunk; the restarted load resumes from the finished chunks and ends
// with every row once and verify passing.
func TestMySQLKillDuringLoad(t *testing.T) {
	const rows = 300_000
	m := newMyEnv(t, fmt.Sprintf(myLedgerSchema, rows), "", myLedgerPipeline)

	load := m.start("load", "--workers", "1")
	var st loadStatus
	waitFor(t, 2*time.Minute, "load checkpoint with a finished chunk", load, func() bool {
		var err error
		st, err = m.status()
		return err == nil && st.State == "loading" && st.done >= 1
	})
	load.kill9(t)
	if st.done >= st.total {
		t.Fatalf("every chunk was done before the kill (%s); the table is too small to test a resume", st.Detail)
	}
	after, err := m.status()
	if err != nil {
		t.Fatal(err)
	}
	if after.State != "loading" || after.done < st.done {
		t.Fatalf("after kill -9 the checkpoint says %s (%s), before it said %d/%d chunks", after.State, after.Detail, st.done, st.total)
	}
	t.Logf("killed load at %s; target had %d of %d rows", after.Detail, m.count(m.testDB, "ledger"), rows)

	code, out, errOut := m.run("load", "--workers", "1")
	if code != 0 {
		t.Fatalf("restarted load: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "resuming initial load") || !strings.Contains(errOut, fmt.Sprintf("chunks_done=%d", after.done)) {
		t.Errorf("the restarted load did not resume from the %d finished chunk(s):\n%s", after.done, tail(errOut))
	}
	if got := m.count(m.testDB, "ledger"); got != rows {
		t.Errorf("target has %d rows, production %d", got, rows)
	}
	if code, out := m.verify(); code != 0 {
		t.Fatalf("verify after the resumed load: exit %d\n%s", code, out)
	}
	if st, err := m.status(); err != nil || st.State != "streaming" {
		t.Errorf("status after the load: %+v %v, want streaming", st, err)
	}
}

// myWriter changes production's ledger continuously in small transactions, and
// on request runs one large transaction.
type myWriter struct {
	nextID atomic.Int64
	big    chan struct{}
	txns   atomic.Int64
	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error
}

func startMyWriter(t *testing.T, m *myEnv, firstID, bigAt, bigN int64) *myWriter {
	ctx, cancel := context.WithCancel(context.Background())
	w := &myWriter{big: make(chan struct{}, 1), cancel: cancel}
	w.nextID.Store(firstID)
	db, err := sql.Open("mysql", m.dsn(m.prodDB))
	if err != nil {
		t.Fatal(err)
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer db.Close()
		w.err = w.run(ctx, db, bigAt, bigN)
	}()
	t.Cleanup(func() { w.stop() })
	return w
}

func (w *myWriter) stop() error {
	w.cancel()
	w.wg.Wait()
	return w.err
}

func (w *myWriter) run(ctx context.Context, db *sql.DB, bigAt, bigN int64) error {
	for i := int64(0); ; i++ {
		if ctx.Err() != nil {
			return nil
		}
		var stmts []string
		select {
		case <-w.big:
			stmts = []string{
				fmt.Sprintf(`INSERT INTO ledger (id, owner, amount, memo) SELECT seq, CONCAT('Big ', seq %% 3000), seq %% 1000, CONCAT('big ', seq) FROM seq_%d_to_%d`, bigAt, bigAt+bigN-1),
				`UPDATE ledger SET amount = amount + 1, memo = CONCAT(memo, '+') WHERE id % 10 = 3 AND id < 20000`,
				`DELETE FROM ledger WHERE id % 10 = 4 AND id < 5000`,
			}
		default:
			id := w.nextID.Add(3) - 3
			stmts = []string{
				fmt.Sprintf(`INSERT INTO ledger (id, owner, amount, memo) VALUES (%d, 'New %d', 1.5, 'n'), (%d, NULL, 2, ''), (%d, 'Owner 7', -3, NULL)`, id, i%50, id+1, id+2),
				fmt.Sprintf(`UPDATE ledger SET owner = 'Moved %d', amount = amount - 1 WHERE id = %d`, i%80, 1+(i*13)%20000),
				fmt.Sprintf(`DELETE FROM ledger WHERE id = %d`, 1+(i*7919)%20000),
				fmt.Sprintf(`DELETE FROM ledger WHERE id = %d`, id-30),
			}
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return ignoreCancel(ctx, err)
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				tx.Rollback()
				return ignoreCancel(ctx, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return ignoreCancel(ctx, err)
		}
		w.txns.Add(1)
		time.Sleep(2 * time.Millisecond) // load shaping, not synchronization
	}
}

// TestMySQLKillDuringSync SIGKILLs a MariaDB sync while production changes (a
// large transaction in flight), restarts it, and checks it converges on
// transform(production), stops cleanly on SIGTERM and verifies.
func TestMySQLKillDuringSync(t *testing.T) {
	const seeded = 20_000
	m := newMyEnv(t, fmt.Sprintf(myLedgerSchema, seeded), "", myLedgerPipeline)

	sync1 := m.start("sync")
	waitFor(t, time.Minute, "initial load by sync", sync1, func() bool {
		return m.count(m.testDB, "ledger") == seeded
	})
	const bigAt, bigN = 10_000_000, 20_000
	w := startMyWriter(t, m, 1_000_000, bigAt, bigN)
	waitFor(t, time.Minute, "streamed inserts", sync1, func() bool {
		return m.count(m.testDB, "ledger WHERE id >= 1000000 AND id < 10000000") > 30
	})
	w.big <- struct{}{}
	waitFor(t, time.Minute, "the large transaction reaching the target", sync1, func() bool {
		return m.count(m.testDB, fmt.Sprintf("ledger WHERE id >= %d", bigAt)) > 0
	})
	sync1.kill9(t)
	t.Logf("killed sync with %d of the large transaction's %d rows in the target, %d writer transactions so far",
		m.count(m.testDB, fmt.Sprintf("ledger WHERE id >= %d", bigAt)), bigN, w.txns.Load())

	sync2 := m.start("sync")
	mark := w.nextID.Load()
	waitFor(t, time.Minute, "streaming after the restart", sync2, func() bool {
		return m.count(m.testDB, fmt.Sprintf("ledger WHERE id >= %d AND id < %d", mark, bigAt)) > 0
	})
	if err := w.stop(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	t.Logf("writer committed %d transactions", w.txns.Load())
	m.waitConverged(myLedgerFingerprint, false, sync2, 2*time.Minute)
	if n := m.count(m.testDB, fmt.Sprintf("ledger WHERE id >= %d", bigAt)); n != bigN {
		t.Errorf("target has %d rows of the large transaction, want %d", n, bigN)
	}
	took := sync2.stop(t, 10*time.Second)
	t.Logf("sync stopped %s after SIGTERM", took.Round(time.Millisecond))
	if code, out := m.verify(); code != 0 {
		t.Fatalf("verify after the stop: exit %d\n%s", code, out)
	}
}
