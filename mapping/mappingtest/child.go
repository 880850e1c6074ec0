package mappingtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/understudy/understudy/mapping"
)

// childEnv carries the child's task (JSON) when the test binary is re-executed as
// the second process of the two-process scenario.
const childEnv = "UNDERSTUDY_MAPPINGTEST_CHILD"

// childTask is what both processes do: resolve the same values, each with several
// goroutines in their own shuffled orders, starting at the same moment.
type childTask struct {
	URL     string `json:"url"`
	Values  int    `json:"values"`
	Workers int    `json:"workers"`
	Out     string `json:"out"` // file the child writes its results to, as JSON []string
}

// RunChild turns the test binary into the second process of the two-process
// scenario when it was started as one, and returns at once otherwise. Call it first
// thing in TestMain of a backend that sets Options.SharedURL:
//
//	func TestMain(m *testing.M) { mappingtest.RunChild(); testenv.Main(m) }
//
// As the child it opens the store, prints "ready", waits for a line on stdin,
// resolves, writes its results and exits.
func RunChild() {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return
	}
	if err := runChild(spec); err != nil {
		fmt.Fprintf(os.Stderr, "mappingtest child: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runChild(spec string) error {
	var task childTask
	if err := json.Unmarshal([]byte(spec), &task); err != nil {
		return err
	}
	ctx := context.Background()
	s, err := mapping.Open(ctx, task.URL)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for go: %w", err)
	}
	out, err := resolveShared(ctx, s, task)
	if err != nil {
		return err
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return os.WriteFile(task.Out, b, 0o600)
}

// resolveShared resolves values 0..task.Values-1 with task.Workers goroutines,
// each through its own Mapper in its own order, and checks they agree.
func resolveShared(ctx context.Context, s mapping.Store, task childTask) ([]string, error) {
	gen := smallGen{words: 500}
	results := make([][]string, task.Workers)
	errs := make([]error, task.Workers)
	var wg sync.WaitGroup
	for w := range task.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := mapping.NewMapper(s, Secret, mapping.MapperOptions{})
			order := rand.Perm(task.Values)
			out := make([]string, task.Values)
			const batch = 200
			for start := 0; start < len(order); start += batch {
				idx := order[start:min(start+batch, len(order))]
				items := make([]mapping.Item, len(idx))
				for i, v := range idx {
					items[i] = mapping.Item{NS: perm, Domain: "name", Value: fmt.Sprintf("shared-%d", v), Gen: gen}
				}
				if err := m.Resolve(ctx, items); err != nil {
					errs[w] = err
					return
				}
				for i, v := range idx {
					out[v] = items[i].Out
				}
			}
			results[w] = out
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	for w := 1; w < len(results); w++ {
		for v := range results[0] {
			if results[w][v] != results[0][v] {
				return nil, fmt.Errorf("value %d: goroutine 0 got %q, goroutine %d got %q", v, results[0][v], w, results[w][v])
			}
		}
	}
	return results[0], nil
}

func testTwoProcesses(t *testing.T, url string) {
	task := childTask{URL: url, Values: 20_000, Workers: 4, Out: filepath.Join(t.TempDir(), "child.json")}
	spec, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// -test.run=^$ runs no test should the child not stop in RunChild.
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child process: %v", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		_ = cmd.Wait()
		t.Fatalf("child process did not get ready (does TestMain call mappingtest.RunChild?): read %q, %v; stderr:\n%s", line, err, stderr.String())
	}

	s, err := mapping.Open(ctx, url)
	if err != nil {
		t.Fatalf("Open %s: %v", url, err)
	}
	defer s.Close()
	// Both processes start now.
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	mine, err := resolveShared(ctx, s, task)
	if err != nil {
		t.Fatalf("this process: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child process: %v; stderr:\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(task.Out)
	if err != nil {
		t.Fatalf("child results: %v", err)
	}
	var theirs []string
	if err := json.Unmarshal(b, &theirs); err != nil {
		t.Fatalf("child results: %v", err)
	}
	if len(theirs) != len(mine) {
		t.Fatalf("child resolved %d values, this process %d", len(theirs), len(mine))
	}
	checkAgree(t, [][]string{mine, theirs})
}
