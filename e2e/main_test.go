package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/understudy/understudy/testenv"
)

// understudyBin is the binary TestMain builds once; every test runs it as a
// subprocess, because kill -9 and SIGTERM need a real process.
var understudyBin string

// secret is UNDERSTUDY_SECRET for every run.
const secret = "e2e-secret-0123456789abcdef-not-for-production"

// TestMain builds the binary, runs the tests and stops every server. It is
// testenv.Main plus the two things this package owns: the built binary's temp dir
// and the second ("test") Postgres server, which testenv does not register.
func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "understudy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	if !testing.Short() {
		understudyBin = filepath.Join(dir, "understudy")
		build := exec.Command("go", "build", "-o", understudyBin, "github.com/understudy/understudy/cmd/understudy")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: building understudy: %v\n%s", err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	if target.s != nil {
		target.s.Stop()
	}
	testenv.StopAll()
	os.RemoveAll(dir)
	os.Exit(code)
}

// target is the second Postgres server, the "test" side, started on first use.
var target struct {
	once sync.Once
	s    *testenv.PostgresServer
	err  error
}

// servers returns the production server (testenv's) and the test server.
func servers(t *testing.T) (prod, test *testenv.PostgresServer) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: runs real servers and the built binary")
	}
	prod = testenv.Postgres(t)
	target.once.Do(func() { target.s, target.err = testenv.StartPostgres("") })
	if target.err != nil {
		if testenv.InCI() {
			t.Fatalf("second Postgres server (CI=true, so this fails instead of skipping): %v", target.err)
		}
		t.Skipf("second Postgres server unavailable: %v", target.err)
	}
	return prod, target.s
}

// env is one scenario: a production database, a test database, a config file in
// its own directory (the embedded mapping store and lock live beside it), and the
// logs of every understudy process it ran.
type env struct {
	t              *testing.T
	prodPG, testPG *testenv.PostgresServer
	prod, test     string // DSNs
	dir, config    string
	extraEnv       []string

	mu   sync.Mutex
	logs []string // paths of every process's stdout/stderr
	seq  int
}

// newEnv creates the databases, runs schema on production and writes the config:
// pipelines is the YAML of the pipelines list, which may use ${PROD_URL} and
// ${TEST_URL}; top holds extra top-level settings.
func newEnv(t *testing.T, schema, top, pipelines string) *env {
	t.Helper()
	prodPG, testPG := servers(t)
	e := &env{t: t, prodPG: prodPG, testPG: testPG, prod: prodPG.NewDatabase(t), test: testPG.NewDatabase(t), dir: t.TempDir()}
	if schema != "" {
		prodPG.Exec(t, e.prod, schema)
	}
	e.config = filepath.Join(e.dir, "understudy.yaml")
	cfg := "secret: ${UNDERSTUDY_SECRET}\nmetrics: off\n" + top + "pipelines:\n" + pipelines
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// proc is one running understudy process.
type proc struct {
	cmd    *exec.Cmd
	name   string
	stdout string // log file paths
	stderr string
	done   chan struct{}
	err    error // from Wait, valid after done
}

// start runs understudy ARGS --config CONFIG in the background.
func (e *env) start(args ...string) *proc {
	e.t.Helper()
	e.mu.Lock()
	e.seq++
	base := filepath.Join(e.dir, fmt.Sprintf("%02d-%s", e.seq, args[0]))
	e.logs = append(e.logs, base+".out", base+".err")
	e.mu.Unlock()
	stdout, err := os.Create(base + ".out")
	if err != nil {
		e.t.Fatal(err)
	}
	stderr, err := os.Create(base + ".err")
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(understudyBin, append(args, "--config", e.config)...)
	cmd.Env = append(os.Environ(), "UNDERSTUDY_SECRET="+secret, "PROD_URL="+e.prod, "TEST_URL="+e.test)
	cmd.Env = append(cmd.Env, e.extraEnv...)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = stdout, stderr, nil
	// Die with the test binary: a crashed test leaves no sync streaming.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	stdout.Close()
	stderr.Close()
	p := &proc{cmd: cmd, name: strings.Join(args, " "), stdout: base + ".out", stderr: base + ".err", done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	e.t.Cleanup(func() {
		if p.running() {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// run runs understudy ARGS to completion (at most 3 minutes) and returns its exit
// code and output.
func (e *env) run(args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	p := e.start(args...)
	select {
	case <-p.done:
	case <-time.After(3 * time.Minute):
		p.cmd.Process.Kill()
		<-p.done
		e.t.Fatalf("understudy %s did not finish within 3 minutes:\n%s", p.name, p.output())
	}
	return p.exitCode(), readFile(p.stdout), readFile(p.stderr)
}

// must runs a command that has to succeed.
func (e *env) must(args ...string) string {
	e.t.Helper()
	code, out, errOut := e.run(args...)
	if code != 0 {
		e.t.Fatalf("understudy %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// verify runs `understudy verify` and returns its exit code and stdout.
func (e *env) verify() (int, string) {
	e.t.Helper()
	code, out, errOut := e.run("verify")
	return code, out + errOut
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) exitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) output() string {
	return "stdout:\n" + tail(readFile(p.stdout)) + "\nstderr:\n" + tail(readFile(p.stderr))
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	if !p.running() {
		t.Fatalf("understudy %s exited before it could be killed:\n%s", p.name, p.output())
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// stop sends SIGTERM and returns how long the process took to exit, failing the
// test after limit or on a non-zero exit.
func (p *proc) stop(t *testing.T, limit time.Duration) time.Duration {
	t.Helper()
	if !p.running() {
		t.Fatalf("understudy %s exited before SIGTERM:\n%s", p.name, p.output())
	}
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(limit):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("understudy %s did not stop within %s of SIGTERM:\n%s", p.name, limit, p.output())
	}
	took := time.Since(start)
	if code := p.exitCode(); code != 0 {
		t.Fatalf("understudy %s exited %d after SIGTERM:\n%s", p.name, code, p.output())
	}
	return took
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// waitFor polls cond every 50 ms until it holds, failing after d. alive, when set,
// is a background process that must keep running meanwhile.
func waitFor(t *testing.T, d time.Duration, what string, alive *proc, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if alive != nil && !alive.running() {
			t.Fatalf("waiting for %s: understudy %s exited (%v):\n%s", what, alive.name, alive.err, alive.output())
		}
		if time.Now().After(deadline) {
			extra := ""
			if alive != nil {
				extra = "\n" + alive.output()
			}
			t.Fatalf("%s: not reached within %s%s", what, d, extra)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// connect opens a connection in UTC, so timestamptz renders alike on both servers.
func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["TimeZone"] = "UTC"
	cfg.RuntimeParams["extra_float_digits"] = "3"
	return pgx.ConnectConfig(ctx, cfg)
}

// tryQuery returns every row of sql, each value as its text (NULL as nil).
func tryQuery(dsn, sql string, args ...any) ([][]*string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, sql, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]*string
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]*string, len(raw))
		for i, b := range raw {
			if b != nil {
				s := string(b)
				row[i] = &s
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

func query(t *testing.T, dsn, sql string, args ...any) [][]*string {
	t.Helper()
	out, err := tryQuery(dsn, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// scalar returns the single value of sql; "" for NULL.
func scalar(t *testing.T, dsn, sql string, args ...any) string {
	t.Helper()
	rows := query(t, dsn, sql, args...)
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("%s: %d rows, want 1", sql, len(rows))
	}
	if rows[0][0] == nil {
		return ""
	}
	return *rows[0][0]
}

// count returns count(*) of table on dsn, or -1 while it cannot be read (the
// target table does not exist yet).
func count(dsn, table string) int64 {
	rows, err := tryQuery(dsn, "SELECT count(*) FROM "+table)
	if err != nil || len(rows) != 1 || rows[0][0] == nil {
		return -1
	}
	var n int64
	fmt.Sscan(*rows[0][0], &n)
	return n
}

// httpGet fetches url and returns status and body.
func httpGet(url string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// str dereferences a query value for messages and comparisons; NULL is "<NULL>".
func str(p *string) string {
	if p == nil {
		return "<NULL>"
	}
	return *p
}

// containsAny reports which of needles occur in hay.
func containsAny(hay []byte, needles []string) []string {
	var found []string
	for _, n := range needles {
		if bytes.Contains(hay, []byte(n)) {
			found = append(found, n)
		}
	}
	return found
}
