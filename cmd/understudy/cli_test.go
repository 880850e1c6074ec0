package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Every command answers --help with its usage on stdout and exit 0, and the
// top-level help lists every command.
func TestHelpForEveryCommand(t *testing.T) {
	var out bytes.Buffer
	if code := exitCode(run(context.Background(), []string{"help"}, nil, &out, &out), &out); code != exitOK {
		t.Fatalf("help: exit %d", code)
	}
	for _, c := range commands {
		if !strings.Contains(out.String(), "  "+c.name+" ") {
			t.Errorf("help does not list %s:\n%s", c.name, out.String())
		}
		var cout bytes.Buffer
		args := []string{c.name, "--help"}
		code := exitCode(run(context.Background(), args, nil, &cout, &cout), &cout)
		if code != exitOK || !strings.Contains(cout.String(), "understudy "+c.name) {
			t.Errorf("%s --help: exit %d\n%s", c.name, code, cout.String())
		}
	}
}

func TestVersionAndUsageErrors(t *testing.T) {
	var out bytes.Buffer
	if code := exitCode(run(context.Background(), []string{"version"}, nil, &out, &out), &out); code != exitOK || !strings.HasPrefix(out.String(), "understudy ") {
		t.Fatalf("version: exit %d %q", code, out.String())
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"load", "--no-such-flag"}, {"load", "extra"}, {"reset", "--purge-mappings", "weekly"}, {"mappings"}} {
		out.Reset()
		if code := exitCode(run(context.Background(), args, nil, &out, &out), &out); code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, code, exitUsage, out.String())
		}
	}
}
