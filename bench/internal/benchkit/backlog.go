package benchkit

import (
	"context"
	"fmt"
	"time"
)

// Marker is the score the last change of a backlog gives customer 1: a replica
// holding it has applied the whole backlog.
const Marker = -424242

// WriteBacklog writes changes row changes in transactions of txnRows rows,
// cycling over customer ids 1 to rows: update(lo, hi) changes ids lo to hi in
// one transaction. It returns the number of transactions.
func WriteBacklog(changes, txnRows, rows int, update func(lo, hi int) error) (int, error) {
	txns := 0
	for done := 0; done < changes; done += txnRows {
		n := min(txnRows, changes-done)
		lo := done%rows + 1
		hi := min(lo+n-1, rows)
		if err := update(lo, hi); err != nil {
			return txns, err
		}
		txns++
	}
	return txns, nil
}

// WaitMarker polls score (customer 1's score on a replica) every 20 ms until it
// is Marker, and returns the time since start; after limit it gives up.
func WaitMarker(ctx context.Context, start time.Time, limit time.Duration, score func() (int64, error)) (time.Duration, error) {
	for time.Since(start) < limit {
		s, err := score()
		if err != nil {
			return 0, err
		}
		if s == Marker {
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

// RecordBacklog records the backlog scenario: changes/s of understudy's catch-up
// (us) against the native replica's (target ≥ 1×), and sync's peak RSS.
func (b *Bench) RecordBacklog(changes, txnRows int, us, native time.Duration, rss int64) {
	ur, nr := float64(changes)/us.Seconds(), float64(changes)/native.Seconds()
	b.Record(Result{Scenario: "backlog catch-up", Metric: fmt.Sprintf("changes/s (%d changes, %d-row txns)", changes, txnRows),
		Understudy: fmt.Sprintf("%.0f (%.1fs)", ur, us.Seconds()), Baseline: fmt.Sprintf("%.0f (%.1fs)", nr, native.Seconds()),
		Ratio: fmt.Sprintf("%.2f×", ur/nr), Target: "≥ 1.0×", Met: Verdict(ur/nr >= 1.0)})
	b.Record(Result{Scenario: "backlog catch-up", Metric: "understudy sync peak RSS", Understudy: MiB(rss), Target: "bounded"})
}

// CeilingRow is one customer as a backlog ceiling replays it: every column's
// text as production holds it before the backlog, and the two columns the
// backlog changes as numbers, which the builder writes in place of their text.
type CeilingRow struct {
	Cols         []string
	Score        int64
	BalanceCents int64
}

// Balance formats BalanceCents as numeric(12,2) text.
func (r *CeilingRow) Balance() string {
	return fmt.Sprintf("%d.%02d", r.BalanceCents/100, r.BalanceCents%100)
}

// BacklogBatches replays the backlog WriteBacklog writes (score + 1, balance +
// 0.01 for ids lo to hi, then the marker) on rows, which hold ids 1 to len(rows)
// in order, and calls build with the rows of each transaction after it: what a
// replica must write for it. build returns the statement or payload the ceiling
// will execute, so that all of them are built before the clock starts.
func BacklogBatches[T any](changes, txnRows int, rows []CeilingRow, build func([]CeilingRow) T) []T {
	var out []T
	WriteBacklog(changes, txnRows, len(rows), func(lo, hi int) error {
		for i := lo - 1; i < hi; i++ {
			rows[i].Score++
			rows[i].BalanceCents++
		}
		out = append(out, build(rows[lo-1:hi]))
		return nil
	})
	rows[0].Score = Marker
	out = append(out, build(rows[:1]))
	return out
}
