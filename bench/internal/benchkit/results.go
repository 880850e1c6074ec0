package benchkit

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"
)

// Result is one row of the results table.
type Result struct {
	Scenario, Metric string
	Understudy       string // understudy's figure
	Baseline         string // the baseline's figure, "" where there is none
	Ratio            string
	Target           string
	Met              string // Verdict(…), or a note
}

// Record prints r as it is measured and keeps it for the table.
func (b *Bench) Record(r Result) {
	b.results = append(b.results, r)
	fmt.Printf("    => %s %s: understudy %s, baseline %s, ratio %s (target %s: %s)\n",
		r.Scenario, r.Metric, r.Understudy, r.Baseline, r.Ratio, r.Target, r.Met)
}

// Print prints the results table, if there are results.
func (b *Bench) Print() {
	if len(b.results) == 0 {
		return
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tMETRIC\tUNDERSTUDY\tBASELINE\tRATIO\tTARGET\tMET")
	for _, r := range b.results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Scenario, r.Metric, r.Understudy, r.Baseline, r.Ratio, r.Target, r.Met)
	}
	tw.Flush()
}

// Verdict is the MET column for a target: "yes" or "NO".
func Verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// MiB formats a size in KiB (as rusage reports it) in whole MiB.
func MiB(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

// Ms formats a duration in whole milliseconds.
func Ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

// RecordBulk records the bulk scenario: rows/s of understudy's load against the
// baseline copy (target ≥ 1.5×) and both peak RSS; baseNote says whose RSS the
// baseline's is.
func (b *Bench) RecordBulk(rows int, us, base Stat, baseNote string) {
	ur := float64(rows) / us.Elapsed.Seconds()
	br := float64(rows) / base.Elapsed.Seconds()
	b.Record(Result{Scenario: "bulk load", Metric: fmt.Sprintf("rows/s (%d rows)", rows),
		Understudy: fmt.Sprintf("%.0f (%.1fs)", ur, us.Elapsed.Seconds()), Baseline: fmt.Sprintf("%.0f (%.1fs)", br, base.Elapsed.Seconds()),
		Ratio: fmt.Sprintf("%.2f×", ur/br), Target: "≥ 1.5×", Met: Verdict(ur/br >= 1.5)})
	b.Record(Result{Scenario: "bulk load", Metric: "peak RSS", Understudy: MiB(us.MaxRSS), Baseline: MiB(base.MaxRSS) + " " + baseNote,
		Target: "bounded", Met: "see memory"})
}

// Memory records the peak RSS of understudy load at rows/10 and at rows (the
// target: less than twice as much for ten times the rows). load runs a Load of n
// rows named name, unless an earlier scenario has.
func (b *Bench) Memory(rows int, load func(n int, name string) error) error {
	small := max(rows/10, 1)
	Say("== memory: peak RSS of understudy load at %d and %d rows", small, rows)
	for _, n := range []int{small, rows} {
		if _, ok := b.loadRSS[n]; ok {
			continue
		}
		if err := load(n, fmt.Sprintf("memory-%d", n)); err != nil {
			return err
		}
	}
	a, c := b.loadRSS[small], b.loadRSS[rows]
	b.Record(Result{Scenario: "memory", Metric: fmt.Sprintf("load peak RSS %d → %d rows", small, rows),
		Understudy: MiB(a) + " → " + MiB(c), Ratio: fmt.Sprintf("%.2f× RSS for %d× rows", float64(c)/float64(a), rows/small),
		Target: "bounded", Met: Verdict(float64(c) < 2*float64(a))})
	return nil
}

// RecordCeiling records what the servers alone can do for a scenario whose
// target understudy misses: rate (per second) of a path with no tool in it (raw
// COPY, pre-built statements), against the same run's baseline rate. A ceiling
// below the target ratio means no tool that writes the same rows through SQL on
// this machine can meet the target.
func (b *Bench) RecordCeiling(scenario, what string, n int, elapsed time.Duration, baseRate, target float64) {
	rate := float64(n) / elapsed.Seconds()
	verdict := fmt.Sprintf("target reachable only if ≥ %.1f×", target)
	if rate/baseRate < target {
		verdict = fmt.Sprintf("below %.1f×: target out of reach here", target)
	}
	b.Record(Result{Scenario: scenario, Metric: "ceiling: " + what,
		Understudy: fmt.Sprintf("%.0f (%.1fs), no tool", rate, elapsed.Seconds()), Baseline: fmt.Sprintf("%.0f", baseRate),
		Ratio: fmt.Sprintf("%.2f×", rate/baseRate), Target: fmt.Sprintf("≥ %.1f×", target), Met: verdict})
}
