// Package checkpoint holds the checkpoint Store contract and its registry. A
// checkpoint records how far a pipeline got: the source position to resume streaming
// after, and, while the initial load is unfinished, which chunks are done.
package checkpoint

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned by Load when the pipeline has no checkpoint.
var ErrNotFound = errors.New("no checkpoint")

// ErrStale is returned by Save when the stored checkpoint has a higher Seq: the
// position would move backwards (or another process owns the pipeline).
var ErrStale = errors.New("checkpoint would move backwards")

// Checkpoint is one pipeline's progress.
type Checkpoint struct {
	Pipeline string `json:"pipeline"`
	// Seq increases with every save of the pipeline; a store refuses a Save whose
	// Seq is lower than the stored one, so a checkpoint never moves backwards even
	// though positions are opaque to the store.
	Seq uint64 `json:"seq"`
	// Position is the source position to resume streaming after.
	Position []byte `json:"position"`
	// Load is set while the initial load is unfinished; nil once it completed.
	Load *LoadProgress `json:"load,omitempty"`
	// Tables lists the tables the completed initial load covered, so a table
	// added to the config later is noticed: streaming alone would never bring
	// its existing rows.
	Tables []string `json:"tables,omitempty"`
	// SourceTime is the commit time of the last change covered, for lag reporting.
	SourceTime time.Time `json:"source_time,omitempty"`
	SavedAt    time.Time `json:"saved_at"`
}

// LoadProgress lists the snapshot chunks already written to the target, so a load
// killed half-way resumes without redoing them.
type LoadProgress struct {
	// Done maps table name → IDs of finished chunks.
	Done map[string][]string `json:"done"`
	// Tables maps table name → total number of chunks, once known.
	Tables map[string]int `json:"tables,omitempty"`
	// Rows counts rows written so far, for progress reporting.
	Rows int64 `json:"rows"`
	// Cursors maps table name → chunk ID → where an unfinished chunk resumes
	// (cdc.ResumableSnapshot), sealed with a key derived from the deployment's
	// secret because a cursor may hold production key values.
	Cursors map[string]map[string][]byte `json:"cursors,omitempty"`
}

// Store persists checkpoints durably.
type Store interface {
	// Load returns the pipeline's checkpoint, or ErrNotFound.
	Load(ctx context.Context, pipeline string) (Checkpoint, error)

	// Save stores cp durably before returning. It returns ErrStale, storing nothing,
	// when the stored checkpoint of cp.Pipeline has a higher Seq. Saving the same Seq
	// again overwrites (a retried save is harmless).
	Save(ctx context.Context, cp Checkpoint) error

	// Delete removes the pipeline's checkpoint; deleting a missing one is no error.
	Delete(ctx context.Context, pipeline string) error

	// Close releases the store.
	Close() error
}
