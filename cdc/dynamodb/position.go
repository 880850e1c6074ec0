package dynamodb

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/understudy/understudy/cdc"
)

// Position is where the source stands in each selected table's stream: per shard,
// the last sequence number applied, and which shards are finished. A parent
// shard is always finished before its children start, so the position is enough
// to resume in lineage order. It is encoded as JSON in one cdc.Position.
type Position struct {
	V int `json:"v"`
	// Since, set by a snapshot, is a time before the scan started: stream records
	// created earlier are already in the scanned data and are skipped (their
	// sequence numbers still advance the position). It lags the capture by
	// sinceMargin so that clock skew and minute-truncated record times on
	// DynamoDB Local can never skip a record the scan did not see.
	Since time.Time `json:"since,omitzero"`
	// At is when the position was made, for the stream-retention check.
	At time.Time `json:"at,omitzero"`
	// Segments is the number of parallel Scan segments per table of the load that
	// captured this position; a resumed load splits tables the same way, so the
	// finished segments it skips are the same segments.
	Segments map[string]int `json:"segments,omitempty"`
	// Tables maps table name → its stream position.
	Tables map[string]*TablePos `json:"tables"`
}

// TablePos is one table's stream position.
type TablePos struct {
	// Stream is the stream's ARN: a stream disabled and enabled again is a new
	// stream, and the old position means nothing in it.
	Stream string `json:"stream"`
	// Shards maps shard ID → progress. Finished shards stay listed until the
	// stream no longer lists them (24 h after they closed), so their children
	// know they may start.
	Shards map[string]*ShardPos `json:"shards"`
}

// ShardPos is one shard's progress.
type ShardPos struct {
	// Seq is the sequence number of the last record applied; "" when none was:
	// the shard is read from its oldest record (TRIM_HORIZON).
	Seq    string `json:"seq,omitempty"`
	Parent string `json:"parent,omitempty"`
	// Done is set once every record of the closed shard was applied.
	Done bool `json:"done,omitempty"`
}

// sinceMargin is how far Since lags the snapshot's start (see Position.Since).
// AWS refuses requests signed more than 15 minutes off, so an hour covers any
// clock skew a working client can have.
const sinceMargin = time.Hour

// retention is how long DynamoDB Streams keeps a record.
const retention = 24 * time.Hour

func newPosition() *Position {
	return &Position{V: 1, Tables: map[string]*TablePos{}, Segments: map[string]int{}}
}

// ParsePosition decodes an encoded position.
func ParsePosition(b cdc.Position) (*Position, error) {
	p := newPosition()
	if len(b) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("dynamodb position: %w", err)
	}
	if p.V != 1 {
		return nil, fmt.Errorf("dynamodb position: version %d is not known to this build", p.V)
	}
	if p.Tables == nil {
		p.Tables = map[string]*TablePos{}
	}
	for _, t := range p.Tables {
		if t.Shards == nil {
			t.Shards = map[string]*ShardPos{}
		}
	}
	return p, nil
}

// Encode returns the position as bytes.
func (p *Position) Encode() cdc.Position {
	b, err := json.Marshal(p)
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	return b
}

// table returns the position of table, creating it.
func (p *Position) table(name, stream string) *TablePos {
	t := p.Tables[name]
	if t == nil {
		t = &TablePos{Stream: stream, Shards: map[string]*ShardPos{}}
		p.Tables[name] = t
	}
	return t
}

// String renders the position for people: per table, each unfinished shard's
// last sequence number and how many shards are finished.
func (p *Position) String() string {
	var parts []string
	for _, name := range sortedKeys(p.Tables) {
		t := p.Tables[name]
		done := 0
		var open []string
		for _, id := range sortedKeys(t.Shards) {
			s := t.Shards[id]
			switch {
			case s.Done:
				done++
			case s.Seq == "":
				open = append(open, id+"@start")
			default:
				open = append(open, id+"@"+s.Seq)
			}
		}
		parts = append(parts, fmt.Sprintf("%s: %d shard(s) finished; %s", name, done, strings.Join(open, ", ")))
	}
	if len(parts) == 0 {
		return "no stream position"
	}
	return strings.Join(parts, "; ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
