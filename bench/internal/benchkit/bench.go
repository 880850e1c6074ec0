// Package benchkit is what the store benchmarks (bench/pgbench, bench/mysqlbench)
// share: the flags and scenario loop, the work dir and the understudy binary they
// run, child processes timed with their peak RSS, the results table, and the
// backlog and pt-heartbeat lag measurements. What differs between stores —
// servers, seeding, baseline commands, SQL — stays in each program.
package benchkit

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Flags are the flags every store benchmark takes, with the same names and
// defaults, so the commands in BENCHMARKS.md read alike for each store.
type Flags struct {
	Scenario    string
	Rows        int
	BacklogRows int
	Changes     int
	TxnRows     int
	Duration    time.Duration
	Workers     int
	Bin         string
	Keep        bool
	Rules       string
	Profile     bool
}

// Register defines the flags on fs; workload names the load generator the lag
// scenario runs for Duration (pgbench, sysbench).
func (f *Flags) Register(fs *flag.FlagSet, workload string) {
	fs.StringVar(&f.Scenario, "scenario", "all", "bulk | backlog | lag | memory | all (comma-separated list allowed)")
	fs.IntVar(&f.Rows, "rows", 1_000_000, "bulk/memory: rows in the customers table")
	fs.IntVar(&f.BacklogRows, "backlog-rows", 100_000, "backlog: rows in the customers table the backlog updates")
	fs.IntVar(&f.Changes, "changes", 1_000_000, "backlog: row changes in the backlog")
	fs.IntVar(&f.TxnRows, "txn-rows", 1_000, "backlog: rows changed per production transaction")
	fs.DurationVar(&f.Duration, "duration", 30*time.Second, "lag: how long "+workload+" runs")
	fs.IntVar(&f.Workers, "workers", 4, "understudy load --workers")
	fs.StringVar(&f.Bin, "bin", "", "understudy binary (default: go build ./cmd/understudy into the work dir)")
	fs.BoolVar(&f.Keep, "keep", false, "keep the work dir (configs, logs)")
	fs.BoolVar(&f.Profile, "profile", false, "write CPU profiles of understudy runs into the work dir (UNDERSTUDY_CPUPROFILE); implies -keep")
	fs.StringVar(&f.Rules, "rules", "anon", "bulk/backlog/memory rules: anon (last_name replace, email replace, ssn hash), hash (ssn hash only), keep (no rules) — for finding where time goes")
}

// CustomerRules returns the rules: block -rules asks for on the customers table,
// named table in the source's spelling ("public.customers", "bench.customers").
func (f *Flags) CustomerRules(table string) string {
	switch f.Rules {
	case "keep":
		return ""
	case "hash":
		return "    rules:\n      " + table + ":\n        ssn: hash\n"
	}
	return `    rules:
      ` + table + `:
        last_name: {replace: last_name, domain: surname}
        email:     {replace: email, domain: email}
        ssn:       hash
`
}

// Bench is one run of a benchmark program: the work dir its configs and logs go
// to, the understudy binary it runs, and the results table it prints last.
type Bench struct {
	// Work is the work dir; Close removes it unless the run keeps it.
	Work string
	// Bin is the understudy binary.
	Bin string
	// CPUProfiles makes every understudy command write a CPU profile into Work
	// (UNDERSTUDY_CPUPROFILE), numbered in the order the commands were made.
	CPUProfiles bool

	keep     bool
	profiles int
	results  []Result
	loadRSS  map[int]int64 // peak RSS of understudy load by rows, for Memory
}

// Open opens a Bench for the flags: -bin, -keep, and -profile, which keeps the
// work dir for the CPU profiles it asks for.
func (f *Flags) Open(prefix string) (*Bench, error) {
	b, err := open(prefix, f.Bin, f.Keep || f.Profile)
	if err == nil {
		b.CPUProfiles = f.Profile
	}
	return b, err
}

// open creates a work dir named after prefix and, unless bin names an understudy
// binary, builds one into it from ./cmd/understudy. With keep, Close leaves the
// work dir in place.
func open(prefix, bin string, keep bool) (*Bench, error) {
	work, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	b := &Bench{Work: work, Bin: bin, keep: keep, loadRSS: map[int]int64{}}
	if b.Bin == "" {
		b.Bin = filepath.Join(work, "understudy")
		Say("building understudy: go build -o %s ./cmd/understudy", b.Bin)
		c := exec.Command("go", "build", "-o", b.Bin, "./cmd/understudy")
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Run(); err != nil {
			b.Close()
			return nil, fmt.Errorf("go build: %w", err)
		}
	}
	return b, nil
}

// Close removes the work dir, or when the run keeps it, says where it is.
func (b *Bench) Close() {
	if b.keep {
		fmt.Println("work dir kept:", b.Work)
		return
	}
	os.RemoveAll(b.Work)
}

// Scenario is one named measurement of a benchmark program.
type Scenario struct {
	Name string
	Run  func(context.Context) error
}

// RunScenarios runs the scenarios the comma-separated list names ("all": every
// one, in the order given), then prints the results table — also when one
// fails, so the rows measured before it are not lost.
func (b *Bench) RunScenarios(ctx context.Context, list string, scenarios []Scenario) error {
	want := strings.Split(list, ",")
	if slices.Contains(want, "all") {
		want = nil
		for _, s := range scenarios {
			want = append(want, s.Name)
		}
	}
	for _, name := range want {
		i := slices.IndexFunc(scenarios, func(s Scenario) bool { return s.Name == name })
		var err error
		if i < 0 {
			err = fmt.Errorf("unknown scenario %q", name)
		} else {
			err = scenarios[i].Run(ctx)
		}
		if err != nil {
			b.Print()
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	b.Print()
	return nil
}

// Say prints a progress line stamped with the time of day.
func Say(format string, args ...any) {
	fmt.Printf("[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// LoadAvg returns /proc/loadavg as the kernel writes it ("" where there is none):
// the machine is shared, and a figure means little without the load beside it.
func LoadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

// Machine says what the figures are measured on: CPU count and model, OS and
// architecture, what `storeBin --version` prints, the load average, then each
// of notes.
func Machine(storeBin string, notes ...string) {
	model := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	v, _ := exec.Command(storeBin, "--version").Output()
	line := fmt.Sprintf("machine: nproc=%d cpu=%q %s; %s; loadavg %s", runtime.NumCPU(), model, runtime.GOOS+"/"+runtime.GOARCH,
		strings.TrimSpace(string(v)), LoadAvg())
	for _, n := range notes {
		line += "; " + n
	}
	Say("%s", line)
}
