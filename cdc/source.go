package cdc

import (
	"context"
	"errors"
)

// ErrPositionLost means the source no longer holds the position a checkpoint points
// at (a purged binlog, a dropped slot, a trimmed stream). Only a reset recovers.
var ErrPositionLost = errors.New("source no longer has the checkpointed position; run `understudy reset` to reload")

// Source reads one production store. A Source only ever reads: it must never write
// rows, and creates only the replication state it needs (slot, publication).
//
// The pipeline uses a Source in this order: Open; then, for a fresh pipeline,
// BeginSnapshot → Chunks/ReadChunk → Snapshot.Close; then Stream from the snapshot's
// position (or a checkpoint's), with Ack after every durable checkpoint; finally Close.
type Source interface {
	// Open connects, checks the prerequisites (replication settings, grants, every
	// selected table exists and has a primary key) and returns the schema of each
	// selected table. Each problem is one actionable line in the returned error.
	Open(ctx context.Context) ([]Table, error)

	// BeginSnapshot captures the position that streaming must resume from *before*
	// reading any row, and returns a Snapshot whose reads see the data as of that
	// position or later. Replaying the stream from that position over the snapshot
	// converges because sinks upsert and the transform is deterministic.
	//
	// resume is nil for a fresh load. When a load was interrupted, resume is the
	// position that load captured: the source must keep it (not capture a new one,
	// not release the log behind it) and Snapshot.Position returns it; the remaining
	// chunks may be read at any later point, since replaying from resume converges.
	BeginSnapshot(ctx context.Context, resume Position) (Snapshot, error)

	// Stream sends batches of changes committed after from, in commit order, to out
	// until ctx is cancelled or an error occurs. It returns ctx.Err() on cancellation.
	// It never closes out. A schema change reaches out as a Batch whose Schema field
	// holds the table's new description, ahead of the changes that use it.
	Stream(ctx context.Context, from Position, out chan<- Batch) error

	// Ack tells the source that every change up to and including pos is durably
	// applied and checkpointed, so the source may release it (Postgres flush LSN,
	// Kafka offset commit). Ack must only be called with checkpointed positions.
	Ack(ctx context.Context, pos Position) error

	// Close releases connections. It does not drop replication state; see Resetter.
	Close() error
}

// Snapshot reads the selected tables as of one consistent point.
type Snapshot interface {
	// Position is where streaming resumes once every chunk is loaded.
	Position() Position

	// Chunks splits a table into independently readable chunks (key ranges, CTID
	// ranges, scan segments). IDs are stable for the same table contents so a resumed
	// load can skip chunks it finished.
	Chunks(ctx context.Context, table Table) ([]Chunk, error)

	// ReadChunk calls emit with the chunk's rows, in batches; emit's error aborts the
	// read and is returned. Safe for concurrent use by several workers.
	ReadChunk(ctx context.Context, chunk Chunk, emit func(rows []Row) error) error

	// Close ends the snapshot (releases the exported snapshot / transaction).
	Close() error
}

// ResumableSnapshot is implemented by snapshots whose chunks can resume part-way
// (a DynamoDB Scan segment from its LastEvaluatedKey), so a killed load rereads
// only the rest of an unfinished chunk instead of all of it.
type ResumableSnapshot interface {
	Snapshot
	// ReadChunkFrom reads chunk from cursor (nil: from its start). emit receives
	// each batch of rows with the cursor the rest of the chunk reads from (nil
	// after the last batch). A cursor may hold production key values: the
	// pipeline seals it before it is stored.
	ReadChunkFrom(ctx context.Context, chunk Chunk, cursor []byte, emit func(rows []Row, next []byte) error) error
}

// Chunk is one independently readable part of a table.
type Chunk struct {
	Table string
	ID    string // stable, unique within the table; recorded in the load checkpoint
	// Spec is the source's own description of the range (opaque to the pipeline).
	Spec []byte
	// EstimatedRows helps progress reporting; 0 when unknown.
	EstimatedRows int64
}

// Resetter is implemented by sources that keep replication state on the production
// server (a Postgres slot and publication). Reset drops it so a reload starts clean.
// Reset must work without Open: a reset is how a user recovers from a broken state.
type Resetter interface {
	Reset(ctx context.Context) error
}

// TableReader is implemented by sources that can read a table's current rows
// outside any snapshot or replication state, which `understudy verify` needs.
type TableReader interface {
	// ReadTable calls emit with every current row of table, in batches.
	ReadTable(ctx context.Context, table Table, emit func(rows []Row) error) error
}

// PositionFormatter renders a position for people (`understudy status`).
type PositionFormatter interface {
	FormatPosition(pos Position) string
}

// StatusReporter is implemented by sources that can say more about their state for
// `understudy status` (a slot's retained WAL, binlog files kept). It connects.
type StatusReporter interface {
	SourceStatus(ctx context.Context, pos Position) (string, error)
}
