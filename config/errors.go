package config

import (
	"fmt"
	suggestpkg "github.com/understudy/understudy/internal/suggest"
	"sort"
	"strings"
)

// Problem is one thing wrong with a config file.
type Problem struct {
	Line  int    // 1-based line in the file; 0 when the problem has no single place
	Field string // path of the field, e.g. "pipelines[0].rules.public.customers.email"
	Msg   string // what is wrong and how to fix it
}

// Error lists every problem found in one config file. Parse and Load return it so
// that a user fixes the whole file in one round instead of one error per run.
type Error struct {
	Path     string
	Problems []Problem // sorted by line
}

// Error formats one problem per line as "file:line: field: message", the form
// editors and terminals turn into links.
func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Path)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
		if p.Field != "" {
			b.WriteString(p.Field)
			b.WriteString(": ")
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

// problems collects Problems while the file is walked.
type problems struct {
	list []Problem
}

func (ps *problems) add(line int, field, format string, args ...any) {
	ps.list = append(ps.list, Problem{Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// sorted returns the problems by line (discovery order within a line), without
// duplicates: two validators may notice the same thing.
func (ps *problems) sorted() []Problem {
	seen := make(map[Problem]bool, len(ps.list))
	out := make([]Problem, 0, len(ps.list))
	for _, p := range ps.list {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return out
}

// suggest returns ", did you mean 'x'?" for the closest candidate when the typo is
// small, or "" when nothing is close enough to be a useful guess.
func suggest(got string, candidates []string) string {
	if best := suggestpkg.Closest(got, candidates); best != "" {
		return fmt.Sprintf("; did you mean '%s'?", best)
	}
	return ""
}
