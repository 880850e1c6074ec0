package registry

import (
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	r := New[int]("widget")
	r.Register("Redis", 1)
	r.Register("file", 2)
	if f, u, err := r.Lookup("REDIS://user:pw@host:1/0"); err != nil || f != 1 || u.Host != "host:1" {
		t.Fatalf("Lookup redis = %v %v %v", f, u, err)
	}
	if f, u, err := r.Lookup("file:state.db"); err != nil || f != 2 || u.Opaque != "state.db" {
		t.Fatalf("Lookup file = %v %v %v", f, u, err)
	}
	_, _, err := r.Lookup("mysql://root:hunter2@db/x")
	if err == nil || !strings.Contains(err.Error(), "mysql:// widgets are not available") ||
		!strings.Contains(err.Error(), "file, redis") || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("unknown scheme: %v", err)
	}
	_, _, err = r.Lookup("redis://u:hunter2@host:99999999999/%zz")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("bad URL error leaks the password or passes: %v", err)
	}
	if _, _, err := r.Lookup("state.db"); err == nil || !strings.Contains(err.Error(), "no scheme") {
		t.Fatalf("no scheme: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering a scheme twice did not panic")
		}
	}()
	r.Register("file", 3)
}
