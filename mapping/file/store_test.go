package file_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/mapping"
	"github.com/understudy/understudy/mapping/file"
	"github.com/understudy/understudy/mapping/mappingtest"
)

func TestStore(t *testing.T) {
	mappingtest.Run(t, func(t *testing.T) mapping.Store {
		s, err := file.Open(filepath.Join(t.TempDir(), "mappings.db"), file.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, mappingtest.Options{
		ExclusiveURL: func(t *testing.T) string { return "file:" + filepath.Join(t.TempDir(), "mappings.db") },
	})
}

// The store holds keyed hashes and replacements, never the production value: no
// file in its directory contains it, neither while open (write-ahead log) nor after
// Close, nor after the memtable was flushed to a sorted table.
func TestNoPlaintextInFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mappings.db")
	s, err := file.Open(path, file.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const canary = "canary-7f3a-production-value"
	m := mapping.NewMapper(s, mappingtest.Secret, mapping.MapperOptions{})
	if err := m.Resolve(context.Background(), []mapping.Item{{NS: mapping.PermanentNamespace(), Domain: "email", Value: canary, Gen: mappingtest.Generator(10)}}); err != nil {
		t.Fatal(err)
	}
	scan := func(stage string) {
		t.Helper()
		files := 0
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files++
			if bytes.Contains(b, []byte(canary)) {
				t.Errorf("%s: %s contains the production value", stage, filepath.Base(p))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files == 0 {
			t.Fatalf("%s: no files in %s; the scan proves nothing", stage, path)
		}
	}
	scan("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scan("closed")
	// Reopening replays the log into a memtable; enough new values flush it to a
	// sorted table.
	s, err = file.Open(path, file.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m = mapping.NewMapper(s, mappingtest.Secret, mapping.MapperOptions{})
	items := make([]mapping.Item, 5000)
	for round := range 20 {
		for i := range items {
			items[i] = mapping.Item{NS: mapping.PermanentNamespace(), Domain: "email", Value: fmt.Sprintf("filler-%d-%d", round, i), Gen: mappingtest.Generator(1000)}
		}
		if err := m.Resolve(context.Background(), items); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scan("after flush")
}

// An existing bbolt file at the path (an earlier version's store) is refused with
// an error that says why, and is left alone.
func TestOldFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mappings.db")
	old := []byte("an earlier understudy's bbolt file")
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := file.Open(path, file.Options{})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open of a path holding a file succeeded")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "bbolt") || !strings.Contains(err.Error(), "migration") {
		t.Errorf("error does not name the path and explain: %v", err)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, old) {
		t.Error("the old file was changed")
	}
}

// Mappings are durable across Close and Open, registry and claims included.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mappings.db")
	s, err := file.Open(path, file.Options{})
	if err != nil {
		t.Fatal(err)
	}
	day := mapping.Namespace{Scope: mapping.Daily, Period: "2024-05-01", Expires: time.Now().Add(time.Hour)}
	ctx := context.Background()
	if _, err := s.Resolve(ctx, []mapping.Request{
		{NS: mapping.PermanentNamespace(), Domain: "d", Key: mapping.Key{1}, Candidates: []string{"a"}},
		{NS: day, Domain: "d", Key: mapping.Key{1}, Candidates: []string{"b"}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = file.Open(path, file.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Resolve(ctx, []mapping.Request{
		{NS: mapping.PermanentNamespace(), Domain: "d", Key: mapping.Key{1}, Candidates: []string{"x"}},
		{NS: day, Domain: "d", Key: mapping.Key{1}, Candidates: []string{"x"}},
		{NS: mapping.PermanentNamespace(), Domain: "d", Key: mapping.Key{2}, Candidates: []string{"a", "c"}},
		{NS: mapping.RunNamespace("r"), Domain: "d", Key: mapping.Key{2}, Candidates: []string{"a"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range []string{"a", "b", "c", "a"} {
		if !got[i].OK || got[i].Value != w {
			t.Errorf("request %d after reopening: %+v, want %q", i, got[i], w)
		}
	}
}

func TestOpenByURL(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, u := range []string{"file:rel/mappings.db", "file:" + filepath.Join(dir, "abs.db"), "file://" + filepath.Join(dir, "abs2.db")} {
		s, err := mapping.Open(context.Background(), u)
		if err != nil {
			t.Fatalf("Open(%s): %v", u, err)
		}
		_ = s.Close()
	}
	if _, err := os.Stat(filepath.Join(dir, "rel", "mappings.db")); err != nil {
		t.Errorf("relative file: URL not resolved against the working directory: %v", err)
	}
	if _, err := mapping.Open(context.Background(), "file://otherhost/x.db"); err == nil {
		t.Error("Open of a file URL with a remote host succeeded")
	}
}
