package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/testenv"
)

// sysbench runs sysbench oltp_write_only against database db.
func sysbench(ctx context.Context, m *myEnv, args ...string) *exec.Cmd {
	base := []string{"oltp_write_only", "--db-driver=mysql", "--mysql-host=127.0.0.1",
		"--mysql-port=" + strconv.Itoa(m.my.Port), "--mysql-user=root", "--mysql-db=" + m.prodDB,
		"--tables=2", "--table-size=10000"}
	return exec.CommandContext(ctx, "sysbench", append(base, args...)...)
}

const sysbenchPipeline = `
  - name: sysbench
    source: ${PROD_URL}
    target: ${TEST_URL}
    tables: [PROD.sbtest1, PROD.sbtest2]
    rules:
      PROD.sbtest1:
        c: hash
        pad: {replace: format, domain: sb_pad}
      PROD.sbtest2:
        c: hash
`

// sysbenchFingerprint aggregates what the rules keep in both tables (and the
// column added mid-stream).
const sysbenchFingerprint = `SELECT
  (SELECT CONCAT_WS('/', count(*), sum(id), sum(k), sum(length(c)), sum(length(pad)), sum(note IS NOT NULL)) FROM sbtest1),
  (SELECT CONCAT_WS('/', count(*), sum(id), sum(k), sum(length(c)), sum(crc32(pad))) FROM sbtest2)`

// TestMySQLSyncUnderSysbench streams `sysbench oltp_write_only` (a workload nobody
// here wrote: updates by index and not, deletes and re-inserts of one id in one
// transaction) plus targeted updates, deletes, and an ALTER TABLE … ADD COLUMN
// in the middle of it, and checks the replica converges and verifies.
func TestMySQLSyncUnderSysbench(t *testing.T) {
	if _, err := exec.LookPath("sysbench"); err != nil {
		if testenv.InCI() {
			t.Fatalf("sysbench missing (CI=true): %v; scripts/deps.sh installs it", err)
		}
		t.Skipf("sysbench missing: %v (scripts/deps.sh installs it)", err)
	}
	m := newMyEnv(t, "", "", sysbenchPipeline)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := sysbench(ctx, m, "prepare").CombinedOutput(); err != nil {
		t.Fatalf("sysbench prepare: %v\n%s", err, out)
	}

	sync := m.start("sync")
	waitFor(t, time.Minute, "initial load by sync", sync, func() bool {
		return m.count(m.testDB, "sbtest2") == 10000
	})
	bench := sysbench(ctx, m, "run", "--time=8", "--threads=2")
	var benchOut strings.Builder
	bench.Stdout, bench.Stderr = &benchOut, &benchOut
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	// Mid-stream: a column added to a table sysbench is writing, targeted
	// changes beside sysbench's, and one large transaction.
	loaded := m.scalar(m.testDB, "SELECT sum(k) FROM sbtest1")
	waitFor(t, time.Minute, "sysbench writes reaching the target", sync, func() bool {
		got, err := m.tryQuery(m.testDB, "SELECT sum(k) FROM sbtest1")
		return err == nil && str(got[0][0]) != loaded
	})
	m.exec(`ALTER TABLE sbtest1 ADD COLUMN note varchar(40) NULL`)
	m.exec(`UPDATE sbtest1 SET note = CONCAT('n', id) WHERE id % 100 = 0`,
		`DELETE FROM sbtest2 WHERE id BETWEEN 200 AND 260`,
		`BEGIN; UPDATE sbtest2 SET k = k + 1 WHERE id % 3 = 0; INSERT INTO sbtest1 (k, c, pad, note) SELECT seq, CONCAT('c', seq), 'pad', 'bulk' FROM seq_1_to_2000; COMMIT;`)
	if err := bench.Wait(); err != nil {
		t.Fatalf("sysbench run: %v\n%s", err, benchOut.String())
	}
	t.Logf("sysbench oltp_write_only: %s tps", sysbenchTPS(benchOut.String()))
	m.waitConverged(sysbenchFingerprint, false, sync, time.Minute)
	if n := m.count(m.testDB, "sbtest1 WHERE note = 'bulk'"); n != 2000 {
		t.Errorf("%d rows of the large transaction with the added column, want 2000", n)
	}
	sync.stop(t, 10*time.Second)
	if code, out := m.verify(); code != 0 {
		t.Fatalf("verify after sysbench: exit %d\n%s", code, out)
	}
	if code, out, errOut := m.run("status"); code != 0 || !strings.Contains(out, "binlog.") {
		t.Errorf("status after sysbench: exit %d\n%s%s", code, out, errOut)
	}
}

var tpsRe = regexp.MustCompile(`transactions:\s+\d+\s+\(([\d.]+) per sec`)

func sysbenchTPS(out string) string {
	if m := tpsRe.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return fmt.Sprintf("? (%d bytes of output)", len(out))
}
