// Package sinks holds the Sink contract that every target store implements, and the
// registry that maps a target URL's scheme to its implementation.
package sinks

import (
	"context"
	"errors"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/checkpoint"
)

// ErrNotReplica means the target does not carry understudy's replica marker and is
// not empty, or is the source itself. understudy refuses to write to it.
var ErrNotReplica = errors.New("target is not a marked understudy replica")

// Sink writes transformed changes to one test store.
//
// Every write is idempotent: Load and Apply upsert by key and delete by key, so a
// batch replayed after a crash converges to the same target state.
type Sink interface {
	// Prepare checks that the target is a marked replica (marking it when it is
	// empty) and not the source, then creates missing tables and adds columns that
	// tables lack. It writes nothing before the replica check passes, and returns an
	// error wrapping ErrNotReplica when it fails.
	Prepare(ctx context.Context, tables []cdc.Table) error

	// Load writes snapshot rows of one table (bulk path: COPY, multi-row INSERT,
	// BatchWriteItem) as upserts. Safe for concurrent use across tables and chunks.
	Load(ctx context.Context, table string, rows []cdc.Row) error

	// Apply applies changes in order, in one target transaction where the target has
	// transactions. It returns only after the changes are durable.
	Apply(ctx context.Context, changes []cdc.Change) error

	// Clear removes every row of the given tables (reset). It refuses, like
	// Prepare, a target that is not a marked replica.
	Clear(ctx context.Context, tables []string) error

	// Close releases connections.
	Close() error
}

// TransactionalCheckpointer is implemented by sinks that can store the pipeline's
// checkpoint in the same transaction as the changes it covers, which makes the
// effect exactly-once. The pipeline prefers it when no other checkpoint store is
// configured.
type TransactionalCheckpointer interface {
	// ApplyAndSave applies changes and saves cp atomically: either both are durable
	// or neither is. It refuses a cp whose Seq is below the stored one.
	ApplyAndSave(ctx context.Context, changes []cdc.Change, cp checkpoint.Checkpoint) error
	// Checkpoints returns the store that reads and deletes those checkpoints.
	Checkpoints() checkpoint.Store
}

// TableReader is implemented by sinks that can read back a table's rows, which
// `understudy verify` compares with transform(source).
type TableReader interface {
	// ReadTable calls emit with every row of table (only table's columns), in
	// batches, with values normalized as the sources normalize them.
	ReadTable(ctx context.Context, table cdc.Table, emit func(rows []cdc.Row) error) error
}
