package suggest

import "testing"

func TestClosest(t *testing.T) {
	cands := []string{"tables", "target", "source", "last_name", "keep", "null"}
	for got, want := range map[string]string{
		"tabels":   "tables",
		"lastname": "last_name",
		"Target":   "target",
		"nul":      "null",
		"xyz":      "",     // nothing close
		"keap":     "keep", // one edit on a 4-letter word
		"zzzz":     "",     // 4 edits: not a typo
	} {
		if c := Closest(got, cands); c != want {
			t.Errorf("Closest(%q) = %q, want %q", got, c, want)
		}
	}
	if d := Distance("kitten", "sitting"); d != 3 {
		t.Errorf("Distance(kitten, sitting) = %d, want 3", d)
	}
}
