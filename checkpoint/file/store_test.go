package file_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/checkpoint"
	"github.com/understudy/understudy/checkpoint/checkpointtest"
	"github.com/understudy/understudy/checkpoint/file"
)

func open(t *testing.T, path string) *file.Store {
	t.Helper()
	s, err := file.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreContract(t *testing.T) {
	checkpointtest.Run(t,
		func(t *testing.T) checkpoint.Store { return open(t, filepath.Join(t.TempDir(), "state.db")) },
		checkpointtest.WithReopen(func(t *testing.T, s checkpoint.Store) checkpoint.Store {
			return open(t, s.(*file.Store).Path())
		}))
}

func TestLockerContract(t *testing.T) {
	checkpointtest.RunLocker(t, func(t *testing.T) (checkpoint.Locker, checkpoint.Locker) {
		path := filepath.Join(t.TempDir(), "state.db")
		return file.NewLocker(path), file.NewLocker(path)
	})
}

// A second process opening the same file gets a prompt error naming it (bbolt's
// flock conflicts between two opens in one process too).
func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	defer s.Close()
	start := time.Now()
	_, err := file.Open(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: err = %v, want one naming %s", err, path)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %s", d)
	}
}

// reset finds the lock through the URL while sync holds the store open.
func TestLockThroughURLWhileStoreIsOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Chdir(dir)
	st, err := checkpoint.Open(ctx, "file:state.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	le, err := st.(checkpoint.Locker).Lock(ctx, "orders", "sync pid 7", 0)
	if err != nil {
		t.Fatal(err)
	}
	l, err := checkpoint.OpenLocker(ctx, "file:"+filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Lock(ctx, "orders", "reset", 0); !errors.Is(err, checkpoint.ErrLocked) || !strings.Contains(err.Error(), "sync pid 7") {
		t.Fatalf("reset's Lock while sync holds it: err = %v, want ErrLocked naming sync pid 7", err)
	}
	if err := le.Release(ctx); err != nil {
		t.Fatal(err)
	}
	le2, err := l.Lock(ctx, "orders", "reset", 0)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	le2.Release(ctx)
}

func TestURLForms(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, u := range []string{"file:" + filepath.Join(dir, "a.db"), "file://" + filepath.Join(dir, "b.db")} {
		s, err := checkpoint.Open(ctx, u)
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		s.Close()
	}
	if _, err := checkpoint.Open(ctx, "file://somehost/x.db"); err == nil {
		t.Fatal("file://somehost/x.db opened; want an error about the host")
	}
}
