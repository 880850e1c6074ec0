package dynamodb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/understudy/understudy/cdc"
)

// Scan segments. A chunk is one segment of a parallel Scan (Segment of
// TotalSegments). The snapshot is a cdc.ResumableSnapshot: after each page the
// pipeline records the page's LastEvaluatedKey (sealed, since it is a production
// key), and a killed load resumes each unfinished segment from there. Segments
// are still kept small (about segmentRows items or segmentBytes) so that a
// load spreads over the workers.
const (
	segmentRows  = 20_000
	segmentBytes = 32 << 20
	minSegments  = 8 // DescribeTable's counts lag by hours: even a "small" table gets some parallelism
	maxSegments  = 4096
)

// segmentsFor sizes a table's parallel scan from DescribeTable's estimates.
func segmentsFor(items, bytes int64) int {
	n := max((items+segmentRows-1)/segmentRows, (bytes+segmentBytes-1)/segmentBytes)
	return int(min(max(n, minSegments), maxSegments))
}

type snapshot struct {
	s    *Source
	pos  *Position
	info map[string]*ddb.TableDescription
}

type segmentSpec struct {
	Segment int32 `json:"segment"`
	Total   int32 `json:"total"`
}

func (sn *snapshot) Position() cdc.Position { return sn.pos.Encode() }

// Chunks returns the table's scan segments. The count is kept in the position,
// so a resumed load plans the same segments and skips the finished ones.
func (sn *snapshot) Chunks(ctx context.Context, t cdc.Table) ([]cdc.Chunk, error) {
	n := sn.pos.Segments[t.Name]
	d := sn.info[t.Name]
	if d == nil {
		return nil, fmt.Errorf("dynamodb source: table %s is not selected", t.Name)
	}
	if n == 0 {
		n = segmentsFor(aws.ToInt64(d.ItemCount), aws.ToInt64(d.TableSizeBytes))
	}
	chunks := make([]cdc.Chunk, n)
	for i := range n {
		spec, _ := json.Marshal(segmentSpec{Segment: int32(i), Total: int32(n)})
		chunks[i] = cdc.Chunk{Table: t.Name, ID: fmt.Sprintf("segment-%d-of-%d", i, n), Spec: spec,
			EstimatedRows: aws.ToInt64(d.ItemCount) / int64(n)}
	}
	return chunks, nil
}

// ReadChunk scans one segment with strongly consistent reads, so every write
// acknowledged before the scan is seen.
func (sn *snapshot) ReadChunk(ctx context.Context, c cdc.Chunk, emit func(rows []cdc.Row) error) error {
	return sn.ReadChunkFrom(ctx, c, nil, func(rows []cdc.Row, _ []byte) error { return emit(rows) })
}

// ReadChunkFrom implements cdc.ResumableSnapshot: the cursor is the
// LastEvaluatedKey of the last page emitted.
func (sn *snapshot) ReadChunkFrom(ctx context.Context, c cdc.Chunk, cursor []byte, emit func(rows []cdc.Row, next []byte) error) error {
	var spec segmentSpec
	if err := json.Unmarshal(c.Spec, &spec); err != nil || spec.Total <= 0 {
		return fmt.Errorf("dynamodb source: bad chunk %s of %s", c.ID, c.Table)
	}
	var from map[string]ddb.AttributeValue
	if cursor != nil {
		var err error
		if from, err = decodeKey(cursor); err != nil {
			return fmt.Errorf("dynamodb source: chunk %s of %s: bad cursor: %w", c.ID, c.Table, err)
		}
	}
	return scanSegmentFrom(ctx, sn.s.DB, c.Table, spec.Segment, spec.Total, from, emit)
}

func (sn *snapshot) Close() error { return nil }

// scanSegment reads one segment page by page (1 MB pages), emitting each page.
func scanSegment(ctx context.Context, api TableAPI, table string, segment, total int32, emit func([]cdc.Row) error) error {
	return scanSegmentFrom(ctx, api, table, segment, total, nil, func(rows []cdc.Row, _ []byte) error { return emit(rows) })
}

// scanSegmentFrom reads one segment from the key after from (nil: its start),
// emitting each page with the encoded key the rest of the segment starts after
// (nil after the last page).
func scanSegmentFrom(ctx context.Context, api TableAPI, table string, segment, total int32, from map[string]ddb.AttributeValue, emit func([]cdc.Row, []byte) error) error {
	in := &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Segment: aws.Int32(segment), TotalSegments: aws.Int32(total), ExclusiveStartKey: from}
	for {
		out, err := api.Scan(ctx, in)
		if err != nil {
			return fmt.Errorf("dynamodb source: scan %s segment %d/%d: %w", table, segment, total, err)
		}
		if len(out.Items) > 0 {
			rows := make([]cdc.Row, len(out.Items))
			for i, item := range out.Items {
				if rows[i], err = Normalize(item); err != nil {
					return fmt.Errorf("dynamodb source: table %s: %w", table, err)
				}
			}
			var next []byte
			if len(out.LastEvaluatedKey) > 0 {
				if next, err = encodeKey(out.LastEvaluatedKey); err != nil {
					return fmt.Errorf("dynamodb source: table %s: %w", table, err)
				}
			}
			if err := emit(rows, next); err != nil {
				return err
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// keyAttr is one key attribute of a LastEvaluatedKey; keys are S, N or B.
type keyAttr struct {
	S *string `json:"S,omitempty"`
	N *string `json:"N,omitempty"`
	B []byte  `json:"B,omitempty"`
}

// encodeKey serializes a LastEvaluatedKey (key attributes only) as JSON.
func encodeKey(key map[string]ddb.AttributeValue) ([]byte, error) {
	m := make(map[string]keyAttr, len(key))
	for name, v := range key {
		switch v := v.(type) {
		case *ddb.AttributeValueMemberS:
			m[name] = keyAttr{S: &v.Value}
		case *ddb.AttributeValueMemberN:
			m[name] = keyAttr{N: &v.Value}
		case *ddb.AttributeValueMemberB:
			m[name] = keyAttr{B: v.Value}
		default:
			return nil, fmt.Errorf("key attribute %s has type %T, not S, N or B", name, v)
		}
	}
	return json.Marshal(m)
}

func decodeKey(b []byte) (map[string]ddb.AttributeValue, error) {
	var m map[string]keyAttr
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	key := make(map[string]ddb.AttributeValue, len(m))
	for name, a := range m {
		switch {
		case a.S != nil:
			key[name] = &ddb.AttributeValueMemberS{Value: *a.S}
		case a.N != nil:
			key[name] = &ddb.AttributeValueMemberN{Value: *a.N}
		case a.B != nil:
			key[name] = &ddb.AttributeValueMemberB{Value: a.B}
		default:
			return nil, fmt.Errorf("key attribute %s has no value", name)
		}
	}
	return key, nil
}

// readSegments is how many segments ReadTable scans in parallel.
const readSegments = 4

// ReadTable reads every current item of table (for verify) with a parallel scan.
func (s *Source) ReadTable(ctx context.Context, t cdc.Table, emit func(rows []cdc.Row) error) error {
	if err := s.connect(ctx); err != nil {
		return err
	}
	var mu sync.Mutex
	return ParallelScan(ctx, s.DB, t.Name, readSegments, func(rows []cdc.Row) error {
		mu.Lock()
		defer mu.Unlock()
		return emit(rows)
	})
}

// ParallelScan reads every item of table, normalized, scanning n segments at once
// with strongly consistent reads. emit is called from n goroutines; the first
// error stops the scan.
func ParallelScan(ctx context.Context, api TableAPI, table string, n int, emit func([]cdc.Row) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			err := scanSegment(ctx, api, table, int32(i), int32(n), emit)
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	var first error
	for range n {
		// Prefer the error that stopped the scan over the cancellations it caused.
		if err := <-errs; err != nil && (first == nil || errors.Is(first, context.Canceled)) {
			first = err
		}
	}
	return first
}
