package testenv

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DynamoDBServer is a running DynamoDB Local (in memory, with Streams). It listens
// on all interfaces (it has no bind option); use Endpoint.
type DynamoDBServer struct {
	// Endpoint is "http://127.0.0.1:PORT".
	Endpoint string

	proc *process
}

var testDynamoDB lazy[*DynamoDBServer]

// DynamoDB returns this test binary's DynamoDB Local, starting it on first use. It
// skips the test when Java or the DynamoDB Local jar is missing (fails under
// CI=true). Without -sharedDb, tables are separate per access key and region.
func DynamoDB(t testing.TB) *DynamoDBServer {
	t.Helper()
	return shared(t, &testDynamoDB, "DynamoDB Local", StartDynamoDB, func(s *DynamoDBServer) *process { return s.proc })
}

// DynamoDBLocalDir is where scripts/deps.sh installs DynamoDB Local:
// $UNDERSTUDY_DDB_LOCAL_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/understudy/dynamodb-local.
func DynamoDBLocalDir() string {
	if d := os.Getenv("UNDERSTUDY_DDB_LOCAL_DIR"); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "understudy", "dynamodb-local")
}

// findDynamoDBJar returns the first DynamoDBLocal.jar under DynamoDBLocalDir.
func findDynamoDBJar() (string, error) {
	root := DynamoDBLocalDir()
	var jar string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == "DynamoDBLocal.jar" {
			jar = path
			return fs.SkipAll
		}
		return nil
	})
	if jar == "" {
		return "", fmt.Errorf("no DynamoDBLocal.jar under %s (%v)", root, err)
	}
	return jar, nil
}

// StartDynamoDB starts DynamoDB Local outside tests (e.g. for a demo), in memory,
// with its working files in dir or a new temp dir when dir is "". Stop it with Stop.
func StartDynamoDB(dir string) (*DynamoDBServer, error) {
	java, err := lookPath("java")
	if err != nil {
		return nil, err
	}
	jar, err := findDynamoDBJar()
	if err != nil {
		return nil, err
	}
	dir, owned, err := serverDir(dir, "ddb")
	if err != nil {
		return nil, err
	}
	jarDir := filepath.Dir(jar)
	s, err := withPortRetry(func(port int) (*DynamoDBServer, error) {
		cmd := exec.Command(java,
			"-Djava.library.path="+filepath.Join(jarDir, "DynamoDBLocal_lib"),
			"-jar", jar, "-inMemory", "-port", strconv.Itoa(port), "-disableTelemetry")
		// It writes a metadata file into its working directory: keep it in ours.
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "DDB_LOCAL_TELEMETRY=0")
		p, err := startProcess("DynamoDBLocal", cmd, dir, filepath.Join(dir, "dynamodb.log"), nil)
		if err != nil {
			return nil, err
		}
		s := &DynamoDBServer{Endpoint: fmt.Sprintf("http://127.0.0.1:%d", port), proc: p}
		if err := p.waitReady(func() error { _, err := s.Call("ListTables", "{}"); return err }); err != nil {
			p.stop()
			return nil, err
		}
		p.removeDir = owned
		return s, nil
	})
	if err != nil && owned {
		_ = os.RemoveAll(dir)
	}
	return s, err
}

// Stop shuts the server down and removes its temp dir.
func (s *DynamoDBServer) Stop() { s.proc.stop() }

// Call sends one DynamoDB JSON API request (e.g. "ListTables", `{}`) with dummy
// credentials (access key "test", region us-east-1; DynamoDB Local checks no
// signature) and returns the response body. A non-200 answer is an error.
func (s *DynamoDBServer) Call(action, body string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint+"/", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810."+action)
	req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/"+time.Now().UTC().Format("20060102")+
		"/us-east-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: HTTP %d: %s", action, resp.StatusCode, b)
	}
	return string(b), nil
}
