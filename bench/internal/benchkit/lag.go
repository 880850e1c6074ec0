package benchkit

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Lag is replication lag sampled pt-heartbeat style: production writes its clock
// into a heartbeat row every 100 ms, and every 100 ms the replica's copy of that
// row, read against the same clock, gives the lag. A sample includes up to 100 ms
// of heartbeat period, so it errs high.
type Lag struct {
	Start   time.Time       // when the workload started
	Samples []time.Duration // in the order taken, one per 100 ms
	// Drain is how long after the workload ended the replica was within 300 ms
	// again; -1 if not within 2 minutes.
	Drain time.Duration
	// Output is what the workload printed.
	Output string
}

// MeasureLag runs workload to its end while beating (beat writes production's
// heartbeat) and sampling (read returns the replica's lag) every 100 ms, then
// measures the drain. The heartbeat has stopped when it returns; an error names
// the workload and carries its output.
func MeasureLag(workload *exec.Cmd, beat func() error, read func() (time.Duration, error)) (Lag, error) {
	var out bytes.Buffer
	workload.Stdout, workload.Stderr = &out, &out
	if err := workload.Start(); err != nil {
		return Lag{}, err
	}
	done := make(chan error, 1)
	go func() { done <- workload.Wait() }()

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
	defer func() { close(stopBeat); <-beatDone }()

	l := Lag{Start: time.Now(), Drain: -1}
	t := time.NewTicker(100 * time.Millisecond)
	var workErr error
sample:
	for {
		select {
		case workErr = <-done:
			break sample
		case <-t.C:
			d, err := read()
			if err != nil {
				t.Stop()
				return l, err
			}
			l.Samples = append(l.Samples, d)
		}
	}
	t.Stop()
	end := time.Now()
	for time.Since(end) < 2*time.Minute {
		if d, err := read(); err == nil && d < 300*time.Millisecond {
			l.Drain = time.Since(end)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.Output = out.String()
	if workErr != nil {
		return l, fmt.Errorf("%s: %w: %s", filepath.Base(workload.Path), workErr, l.Output)
	}
	mu.Lock()
	defer mu.Unlock()
	if beatErr != nil {
		return l, fmt.Errorf("heartbeat: %w", beatErr)
	}
	if len(l.Samples) == 0 {
		return l, errors.New("no lag samples")
	}
	return l, nil
}

// Percentile returns the sample below which the fraction q of the samples lie
// (q = 1: the largest).
func (l Lag) Percentile(q float64) time.Duration {
	s := slices.Sorted(slices.Values(l.Samples))
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// RecordLag records the lag scenario: p50 / p95 / p99 / max of l (target: p99
// under a second) with the workload described in the metric, and sync's peak
// RSS.
func (b *Bench) RecordLag(scenario, workload string, l Lag, rss int64) {
	p99 := l.Percentile(0.99)
	b.Record(Result{Scenario: scenario, Metric: "lag p50 / p95 / p99 / max (" + workload + ")",
		Understudy: fmt.Sprintf("%s / %s / %s / %s", Ms(l.Percentile(0.50)), Ms(l.Percentile(0.95)), Ms(p99), Ms(l.Percentile(1))),
		Target:     "p99 < 1 s", Met: Verdict(p99 < time.Second)})
	b.Record(Result{Scenario: scenario, Metric: "understudy sync peak RSS", Understudy: MiB(rss), Target: "bounded"})
}
