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
// TotalSegments). The pipeline records finished chunks only, so a killed load
// rescans its unfinished segments from their start; segments are therefore kept
// small (about segmentRows items or segmentBytes), so that little is read twice
// — a mid-segment LastEvaluatedKey would need a partial-chunk checkpoint the
// Chunk contract does not have.
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
	var spec segmentSpec
	if err := json.Unmarshal(c.Spec, &spec); err != nil || spec.Total <= 0 {
		return fmt.Errorf("dynamodb source: bad chunk %s of %s", c.ID, c.Table)
	}
	return scanSegment(ctx, sn.s.DB, c.Table, spec.Segment, spec.Total, emit)
}

func (sn *snapshot) Close() error { return nil }

// scanSegment reads one segment page by page (1 MB pages), emitting each page.
func scanSegment(ctx context.Context, api TableAPI, table string, segment, total int32, emit func([]cdc.Row) error) error {
	in := &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Segment: aws.Int32(segment), TotalSegments: aws.Int32(total)}
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
			if err := emit(rows); err != nil {
				return err
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
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
