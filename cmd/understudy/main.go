// Command understudy keeps a test environment an anonymized, continuously synced
// replica of production. This package is the CLI only: it parses flags, loads the
// config, calls into the packages, and maps errors to exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/understudy/understudy/config"
	"github.com/understudy/understudy/internal/gctune"
)

// Exit codes. Scripts (and the reset runbook) rely on them.
const (
	exitOK       = 0
	exitFailure  = 1 // a run failed, or verify found differences
	exitUsage    = 2 // bad flags or a bad config file: fix the input and run again
	exitConflict = 3 // the pipeline is held by another process (reset during sync)
)

func main() {
	gctune.Apply()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile(os.Getenv("UNDERSTUDY_CPUPROFILE"), os.Stderr)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err (one line per problem) and returns the process exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var cfgErr *config.Error
	var usage usageError
	var cfgFile configError
	switch {
	case errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &usage):
		fmt.Fprintln(stderr, "understudy:", err)
		fmt.Fprintln(stderr, "Run 'understudy help' for usage.")
		return exitUsage
	case errors.As(err, &cfgErr):
		fmt.Fprintln(stderr, err) // already one "file:line: field: problem" per line
		return exitUsage
	case errors.As(err, &cfgFile):
		fmt.Fprintln(stderr, "understudy:", err)
		return exitUsage
	case errors.Is(err, errDifferences):
		return exitFailure
	case isLocked(err):
		fmt.Fprintln(stderr, "understudy:", err)
		return exitConflict
	default:
		fmt.Fprintln(stderr, "understudy:", err)
		return exitFailure
	}
}

// startProfile writes a CPU profile of the whole run to path when it is set
// (UNDERSTUDY_CPUPROFILE, for the benchmarks in bench/: `go tool pprof` it). A
// profile holds function names and timings, never row values.
func startProfile(path string, stderr io.Writer) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintln(stderr, "understudy: UNDERSTUDY_CPUPROFILE:", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
