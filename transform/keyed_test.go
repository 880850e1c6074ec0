package transform

import (
	"fmt"
	"strings"
	"testing"
)

// TestRenderMemoNeverChangesAHash: the memo is only a shortcut; what render
// returns for a value must be the same whether it was remembered, forgotten
// (rotated out) or never kept (too long).
func TestRenderMemoNeverChangesAHash(t *testing.T) {
	k := newKeyedHash([]byte("test secret"), hashLabel, "ssn")
	fresh := newKeyedHash([]byte("test secret"), hashLabel, "ssn")
	direct := func(v string) string { return fresh.draw(v, fresh.sum64(v)) }
	values := []string{"123-45-6789", "", "ÅSA-99", strings.Repeat("x", memoMaxLen+1)}
	for i := range 3 * memoSize {
		values = append(values, fmt.Sprintf("%03d-%02d-%04d", i%1000, i%100, i))
	}
	for pass := range 2 {
		for i, v := range values {
			if i > 10 && pass == 1 && i%97 != 0 {
				continue // the second pass samples: old, rotated-out and young entries
			}
			if got, want := k.render(v), direct(v); got != want {
				t.Fatalf("pass %d: render(%q) = %q, want %q", pass, v, got, want)
			}
		}
	}
	if n := k.memo.Len(); n > 2*memoSize {
		t.Errorf("memo holds %d entries, bound %d", n, 2*memoSize)
	}
	if _, ok := k.memo.Get(values[3]); ok {
		t.Error("a value longer than memoMaxLen was remembered")
	}
}
