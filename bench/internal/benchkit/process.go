package benchkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Stat is what a finished child process cost.
type Stat struct {
	Elapsed time.Duration // wall clock
	MaxRSS  int64         // peak resident set, KiB (wait4 rusage)
}

// Timed runs cmd to completion with its output in logName in the work dir. The
// error carries the tail of that log.
func (b *Bench) Timed(cmd *exec.Cmd, logName string) (Stat, error) {
	path := filepath.Join(b.Work, logName)
	f, err := os.Create(path)
	if err != nil {
		return Stat{}, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	start := time.Now()
	if err = cmd.Start(); err == nil {
		hwm := watchRSS(cmd.Process.Pid)
		err = cmd.Wait()
		hwm.stop()
		st := Stat{Elapsed: time.Since(start), MaxRSS: hwm.peak(cmd)}
		if err != nil {
			return st, fmt.Errorf("%s: %w (log: %s)", strings.Join(cmd.Args, " "), err, tail(path))
		}
		return st, nil
	}
	st := Stat{Elapsed: time.Since(start)}
	if err != nil {
		return st, fmt.Errorf("%s: %w (log: %s)", strings.Join(cmd.Args, " "), err, tail(path))
	}
	return st, nil
}

// rssWatch samples a child's VmHWM (peak resident set of its address space)
// from /proc while it runs.
//
// The wait4 rusage figure (ru_maxrss) is not the child's own: Go starts
// children with vfork semantics (the child shares the parent's address space
// until exec), and Linux folds that space's high-water mark into the child's
// ru_maxrss at exec. Every child then reported at least the bench process's own
// peak — which, once a scenario had built a million pre-built rows in memory,
// was the figure printed for every later understudy run. VmHWM belongs to the
// address space exec creates, so it is the child's alone.
type rssWatch struct {
	pid  int
	done chan struct{}
	max  atomic.Int64
	wg   sync.WaitGroup
}

func watchRSS(pid int) *rssWatch {
	w := &rssWatch{pid: pid, done: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			w.sample()
			select {
			case <-w.done:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// sample reads VmHWM (KiB); it only grows, so the last reading before exit is
// the peak to within the sampling period.
func (w *rssWatch) sample() {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.pid))
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			var kib int64
			fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(v), " kB"), &kib)
			if kib > w.max.Load() {
				w.max.Store(kib)
			}
		}
	}
}

func (w *rssWatch) stop() { close(w.done); w.wg.Wait() }

// peak is the sampled VmHWM, or where /proc could not be read, the rusage
// figure (an upper bound, see rssWatch).
func (w *rssWatch) peak(cmd *exec.Cmd) int64 {
	if n := w.max.Load(); n > 0 {
		return n
	}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			return ru.Maxrss
		}
	}
	return 0
}

// tail returns the end of a log, enough to see why a command failed.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return strings.TrimSpace(string(b))
}

// Shell returns a command running script under bash -o pipefail, so a pipeline
// fails when any of its stages does.
func Shell(script string) *exec.Cmd {
	return exec.Command("bash", "-o", "pipefail", "-c", script)
}

// ShellJoin quotes args for a bash command line.
func ShellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// Pipeline is what a benchmark's understudy config says about its one pipeline,
// "bench".
type Pipeline struct {
	Mappings string // the mapping store; "" is the embedded one beside the config
	Source   string
	Target   string
	Tables   []string
	Rules    string // a rules: block indented for the pipeline, or ""
}

// Config writes the config for p into the directory name in the work dir and
// returns its path.
func (b *Bench) Config(name string, p Pipeline) (string, error) {
	dir := filepath.Join(b.Work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if p.Mappings == "" {
		p.Mappings = "file:mappings.db"
	}
	cfg := fmt.Sprintf(`secret: ${UNDERSTUDY_SECRET}
mappings: %s
pipelines:
  - name: bench
    source: %s
    target: %s
    tables: [%s]
%s`, p.Mappings, p.Source, p.Target, strings.Join(p.Tables, ", "), p.Rules)
	path := filepath.Join(dir, "understudy.yaml")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

// Understudy returns the command `understudy ARGS --config cfg` with the
// config's secret in its environment.
func (b *Bench) Understudy(cfg string, args ...string) *exec.Cmd {
	cmd := exec.Command(b.Bin, append(args, "--config", cfg)...)
	cmd.Env = append(os.Environ(), "UNDERSTUDY_SECRET=bench-secret-not-for-production-0123456789")
	if b.CPUProfiles {
		b.profiles++
		cmd.Env = append(cmd.Env, fmt.Sprintf("UNDERSTUDY_CPUPROFILE=%s", filepath.Join(b.Work, fmt.Sprintf("cpu-%02d-%s.pprof", b.profiles, args[0]))))
	}
	return cmd
}

// Load runs `understudy load --workers W` on cfg, its log name-understudy.log,
// and keeps its peak RSS as the figure for n rows (see Memory).
func (b *Bench) Load(cfg, name string, n, workers int) (Stat, error) {
	cmd := b.Understudy(cfg, "load", "--workers", fmt.Sprint(workers))
	Say("understudy: %s", strings.Join(cmd.Args, " "))
	st, err := b.Timed(cmd, name+"-understudy.log")
	if err == nil {
		b.loadRSS[n] = st.MaxRSS
	}
	return st, err
}

// Sync is a running `understudy sync`.
type Sync struct {
	cmd *exec.Cmd
	log *os.File
	hwm *rssWatch
	rss int64
}

// StartSync starts `understudy sync --metrics off` on cfg, its output in
// logName in the work dir.
func (b *Bench) StartSync(cfg, logName string) (*Sync, error) {
	cmd := b.Understudy(cfg, "sync", "--metrics", "off")
	f, err := os.Create(filepath.Join(b.Work, logName))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	return &Sync{cmd: cmd, log: f, hwm: watchRSS(cmd.Process.Pid)}, nil
}

// Stop stops sync with SIGTERM, waits for it and returns its peak RSS in KiB.
// Calling it again returns the same figure.
func (s *Sync) Stop() int64 {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		s.cmd.Wait()
		s.hwm.stop()
		s.rss = s.hwm.peak(s.cmd)
		s.log.Close()
	}
	return s.rss
}

// Tail returns the end of sync's log, for an error that needs it.
func (s *Sync) Tail() string { return tail(s.log.Name()) }
