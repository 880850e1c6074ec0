// Package gctune sets understudy's garbage-collector defaults.
//
// understudy's heap is a long-lived mapping cache (up to 250k entries) plus a
// stream of short-lived rows. With Go's default GOGC=100 every cycle rescans the
// cache for little garbage: profiles of the Postgres backlog and the Kafka mirror
// spend a quarter to a third of their CPU in GC (BENCHMARKS.md). A higher
// GOGC trades memory for CPU; the soft memory limit keeps the trade bounded,
// since near the limit the collector runs as often as it must.
package gctune

import (
	"os"
	"runtime/debug"
)

const (
	// Percent is the GOGC understudy runs with unless GOGC is set.
	Percent = 400
	// MemoryLimit is the soft limit (GOMEMLIMIT) unless GOMEMLIMIT is set.
	MemoryLimit = 1 << 30
)

// Apply sets the defaults, leaving any GOGC or GOMEMLIMIT from the environment
// in force: operators size memory with those, as for any Go service.
func Apply() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(Percent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(MemoryLimit)
	}
}
