// Package cdc holds the change model shared by every source, the transformer and
// every sink, and the Source contract. No source-specific type leaks past its own
// package: a Postgres WAL message, a MySQL row event, a DynamoDB stream record and a
// Kafka message all become a Change.
package cdc

import (
	"fmt"
	"time"
)

// Op is what a change does to its row.
type Op uint8

const (
	// Insert adds a row. Snapshot rows are Inserts too; sinks apply them as upserts
	// so that replaying a stream over a snapshot converges.
	Insert Op = iota + 1
	// Update replaces a row's columns. After holds the new image; columns listed in
	// Change.Unchanged were not sent by the source and must be left as they are.
	Update
	// Delete removes the row named by Key.
	Delete
	// Truncate removes every row of Table. Key, Before and After are nil.
	Truncate
)

func (o Op) String() string {
	switch o {
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	case Truncate:
		return "truncate"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Row maps column names to normalized values (see value.go for the value types).
// A column that is absent from a Row was not sent; a column present with a nil
// value is SQL NULL. A Row is immutable once a source has emitted it: the
// transformer may pass it on shared, and sinks only read it.
type Row map[string]any

// Clone returns a shallow copy: values are immutable by convention, so copying the
// map is enough to let a transformer rewrite a row without touching the source's.
func (r Row) Clone() Row {
	if r == nil {
		return nil
	}
	c := make(Row, len(r))
	for k, v := range r {
		c[k] = v
	}
	return c
}

// Position is a source position, opaque outside its source package. Each source
// keeps a typed position (Postgres LSN, MySQL GTID set or file+pos, DynamoDB shard
// map, Kafka partition offsets) with Encode/Parse functions; everything between
// packages sees only these bytes.
type Position []byte

// Change is one row-level change, the unit every source emits and every sink
// applies.
type Change struct {
	Table     string // "schema.table", DynamoDB table name, or Kafka topic
	Op        Op
	Key       Row // primary-key columns → values (DynamoDB: hash/range key)
	Before    Row // old image when the source has it, else nil
	After     Row // new image for Insert and Update
	Unchanged []string
	// CommitTime is when the source committed the change (zero for snapshot rows).
	CommitTime time.Time
	// Position is set on the last change of a transaction (or on a Batch's Commit);
	// a checkpoint may only be taken at such a position.
	Position Position
}

// Batch is a run of changes read from a source's log, in commit order.
//
// A large transaction may arrive as several Batches: every Batch but the last has
// a nil Commit. Only a Batch with a non-nil Commit ends at a transaction boundary,
// and only its Commit may be checkpointed and acknowledged.
type Batch struct {
	// Schema, when set, announces the new description of tables whose columns
	// changed (a column added in production), that were created, or that were
	// renamed (Table.RenamedFrom names the old table); it applies before Changes.
	// A dropped table is not announced: its rows are removed by a Truncate change.
	Schema  []Table
	Changes []Change
	Commit  Position
	// CommitTime of the last transaction that ended in this batch, for lag metrics.
	CommitTime time.Time
}
