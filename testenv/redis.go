package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// redisDatabases is how many logical databases the test Redis has; every URL call
// takes a fresh one, so tests in one binary never see each other's keys.
const redisDatabases = 1024

// RedisServer is a running redis-server.
type RedisServer struct {
	// Addr is host:port on loopback.
	Addr string

	proc   *process
	nextDB atomic.Int64
}

var testRedis lazy[*RedisServer]

// Redis returns this test binary's Redis server, starting it on first use. It
// skips the test when redis-server is missing (fails under CI=true).
func Redis(t testing.TB) *RedisServer {
	t.Helper()
	return shared(t, &testRedis, "Redis", StartRedis, func(s *RedisServer) *process { return s.proc })
}

// URL returns "redis://127.0.0.1:PORT/N" for a database index no other caller in
// this process got, so each test starts with an empty keyspace.
func (s *RedisServer) URL(t testing.TB) string {
	t.Helper()
	n := s.nextDB.Add(1) - 1
	if n >= redisDatabases {
		t.Fatalf("testenv: all %d Redis databases are taken; raise redisDatabases", redisDatabases)
	}
	return fmt.Sprintf("redis://%s/%d", s.Addr, n)
}

// StartRedis starts a redis-server outside tests (e.g. for a demo) with its files
// in dir, or in a new temp dir when dir is "". Stop it with Stop.
func StartRedis(dir string) (*RedisServer, error) {
	bin, err := lookPath("redis-server")
	if err != nil {
		return nil, err
	}
	dir, owned, err := serverDir(dir, "redis")
	if err != nil {
		return nil, err
	}
	s, err := withPortRetry(func(port int) (*RedisServer, error) {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		// No persistence: test data is disposable and fsyncs slow tests down.
		cmd := exec.Command(bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir,
			"--databases", strconv.Itoa(redisDatabases),
			"--daemonize", "no", "--protected-mode", "no")
		cmd.Dir = dir
		p, err := startProcess("redis-server", cmd, dir, filepath.Join(dir, "redis.log"), nil)
		if err != nil {
			return nil, err
		}
		p.removeDir = owned
		if err := p.waitReady(func() error { return redisPing(addr) }); err != nil {
			p.removeDir = false // keep the dir for the retry or the error's log path
			p.stop()
			return nil, err
		}
		return &RedisServer{Addr: addr, proc: p}, nil
	})
	if err != nil && owned {
		_ = os.RemoveAll(dir)
	}
	return s, err
}

// Stop shuts the server down and removes its temp dir.
func (s *RedisServer) Stop() { s.proc.stop() }

// redisPing sends PING in the inline protocol and expects +PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// serverDir returns dir, or a new short temp dir (unix socket paths must stay
// under ~107 bytes) that the caller owns and removes.
func serverDir(dir, prefix string) (string, bool, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", false, err
		}
		abs, err := filepath.Abs(dir)
		return abs, false, err
	}
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", false, err
	}
	// Servers may run as another user (postgres, mysql) that must enter the dir.
	if err := os.Chmod(d, 0o755); err != nil {
		return "", false, err
	}
	return d, true, nil
}
