// Package testenv starts real servers for tests: PostgreSQL 15, MariaDB 10.11,
// Redis and DynamoDB Local. Each server is started on first use, once per test
// binary, as a child process on a free loopback port with its own temp dir, and is
// stopped by Main when the tests are done.
//
// Use it from a package's TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// A server whose binary is missing, or that fails to start, skips the test, except
// under CI=true where it fails the test: CI must never turn a missing server into a
// green run. `make deps` (scripts/deps.sh) installs everything.
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// installHint is appended to every "server unavailable" message.
const installHint = "install the test servers with `make deps` (scripts/deps.sh)"

// startTimeout bounds how long a server may take to accept its first query.
const startTimeout = 60 * time.Second

// stopTimeout bounds a graceful stop before the process is killed.
const stopTimeout = 15 * time.Second

// InCI reports whether the tests run under CI (CI=true), where a missing server
// fails the run instead of skipping.
func InCI() bool {
	v, _ := strconv.ParseBool(os.Getenv("CI"))
	return v
}

// Main runs the tests, stops every server started by this process and exits with
// the tests' code. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

// StopAll stops every server started by this process for tests (through Redis,
// Postgres, MariaDB or DynamoDB). Main calls it; servers from the Start*
// constructors are stopped by their own Stop.
func StopAll() {
	registry.mu.Lock()
	procs := registry.procs
	registry.procs = nil
	registry.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop()
		}()
	}
	wg.Wait()
}

// registry holds the test servers Main must stop.
var registry struct {
	mu    sync.Mutex
	procs []*process
}

func register(p *process) {
	registry.mu.Lock()
	registry.procs = append(registry.procs, p)
	registry.mu.Unlock()
}

// unavailable ends the test because a server cannot be had: a skip on a developer
// machine without the server, a failure under CI.
func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if InCI() {
		t.Fatalf("testenv: %s unavailable (CI=true, so this fails instead of skipping): %v\n%s", what, err, installHint)
	}
	t.Skipf("testenv: %s unavailable: %v\n%s", what, err, installHint)
}

// lazy starts a value once per process; a failed start is remembered and reported
// to every caller rather than retried, so one broken server costs one timeout.
type lazy[T any] struct {
	once sync.Once
	v    T
	err  error
}

func (l *lazy[T]) get(start func() (T, error)) (T, error) {
	l.once.Do(func() { l.v, l.err = start() })
	return l.v, l.err
}

// shared returns the test binary's server of one kind, starting it on first use
// and registering it to be stopped by Main. A server that cannot start skips the
// test, or fails it under CI=true.
func shared[S any](t testing.TB, l *lazy[S], name string, start func(dir string) (S, error), proc func(S) *process) S {
	t.Helper()
	s, err := l.get(func() (S, error) {
		s, err := start("")
		if err == nil {
			register(proc(s))
		}
		return s, err
	})
	if err != nil {
		unavailable(t, name, err)
	}
	return s
}

// process is one server child process with its temp dir and log.
type process struct {
	name    string
	cmd     *exec.Cmd
	dir     string // removed on stop when removeDir is set
	logPath string
	// stopSignal asks for a fast, clean shutdown (Postgres: SIGINT, since SIGTERM
	// waits for clients to disconnect).
	stopSignal syscall.Signal
	removeDir  bool
	exited     chan struct{} // closed when Wait returned
	waitErr    error
	stopOnce   sync.Once
}

// startProcess starts cmd with its output in logPath. The child gets SIGKILL when
// this process dies (Pdeathsig), so a killed test binary leaves no server behind.
func startProcess(name string, cmd *exec.Cmd, dir, logPath string, cred *syscall.Credential) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own copy
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr(cred)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, dir: dir, logPath: logPath, stopSignal: syscall.SIGTERM, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// sysProcAttr runs the child as cred (when set) and kills it with its parent. The
// credential is set directly rather than through runuser or the server's own --user
// switch: a uid change inside the child would clear Pdeathsig, while Go sets it
// after switching credentials.
func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
}

// stop asks the server to shut down, waits, kills it after stopTimeout, and removes
// its temp dir. Safe to call more than once.
func (p *process) stop() {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Signal(p.stopSignal)
			select {
			case <-p.exited:
			case <-time.After(stopTimeout):
				_ = p.cmd.Process.Kill()
				<-p.exited
			}
		}
		if p.removeDir && p.dir != "" {
			_ = os.RemoveAll(p.dir)
		}
	})
}

// running reports whether the process has not exited.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// logTail returns the end of the server log, for failure messages.
func (p *process) logTail() string { return tailFile(p.logPath, 3000) }

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > n {
		b = append([]byte("…"), b[len(b)-n:]...)
	}
	return string(bytes.TrimSpace(b))
}

// waitReady polls ready until it succeeds, the process exits or startTimeout
// passes. The error carries the log tail.
func (p *process) waitReady(ready func() error) error {
	deadline := time.Now().Add(startTimeout)
	delay := 20 * time.Millisecond
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if !p.running() {
			return &startError{name: p.name, reason: fmt.Sprintf("exited before it was ready (%v)", p.waitErr), log: p.logTail()}
		}
		if time.Now().After(deadline) {
			return &startError{name: p.name, reason: fmt.Sprintf("not ready after %s: %v", startTimeout, err), log: p.logTail()}
		}
		time.Sleep(delay)
		delay = min(delay*2, 250*time.Millisecond)
	}
}

// startError is a failed start with the server's log tail.
type startError struct {
	name, reason, log string
}

func (e *startError) Error() string {
	return fmt.Sprintf("%s %s\n--- %s log (tail) ---\n%s", e.name, e.reason, e.name, e.log)
}

// portInUse reports whether a failed start was a lost race for the port, which
// is worth another try on a fresh port.
func portInUse(err error) bool {
	var se *startError
	if !errors.As(err, &se) {
		return false
	}
	l := strings.ToLower(se.log)
	return strings.Contains(l, "address already in use") || strings.Contains(l, "could not bind") || strings.Contains(l, "bindexception")
}

// withPortRetry runs start on a fresh free port, trying again (up to 3 times) when
// another process took the port between our pick and the server's bind.
func withPortRetry[T any](start func(port int) (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range 3 {
		var port int
		port, err = freePort()
		if err != nil {
			return v, err
		}
		v, err = start(port)
		if err == nil || !portInUse(err) {
			return v, err
		}
	}
	return v, err
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lookPath finds a binary in PATH or in the extra dirs, naming the install hint
// when it is missing.
func lookPath(name string, dirs ...string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in PATH%s", name, inDirs(dirs))
	}
	return p, nil
}

func inDirs(dirs []string) string {
	if len(dirs) == 0 {
		return ""
	}
	return " nor in " + strings.Join(dirs, ", ")
}

// serviceUser returns the credential to run a server as when we are root (initdb
// and mariadbd refuse to run as root), and chowns dir to it. Not root: nil, the
// server runs as we do.
func serviceUser(name, dir string) (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("running as root needs the system user %q to run the server as: %w", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
	if err != nil {
		return nil, fmt.Errorf("chown %s to %s: %w", dir, name, err)
	}
	// An empty Groups drops root's supplementary groups in the server.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// runAs runs a setup command (initdb, mariadb-install-db) to completion as cred,
// returning its output on failure.
func runAs(cred *syscall.Credential, dir string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = sysProcAttr(cred)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", filepath.Base(name), err, tail(out, 3000))
	}
	return nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

// dbName turns a test name into a database name that is unique in this process
// and valid unquoted in Postgres and MariaDB (lower case, digits, _; ≤ 63 bytes).
func dbName(t testing.TB, n uint64) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := fmt.Sprintf("db%d_%s", n, b.String())
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}
