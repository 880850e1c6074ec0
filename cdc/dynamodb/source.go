package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streams "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/understudy/understudy/cdc"
	iddb "github.com/understudy/understudy/internal/ddb"
)

func init() {
	cdc.Register(func(ctx context.Context, opts cdc.SourceOptions) (cdc.Source, error) {
		return New(opts)
	}, "dynamodb")
}

var (
	_ cdc.Source            = (*Source)(nil)
	_ cdc.TableReader       = (*Source)(nil)
	_ cdc.PositionFormatter = (*Source)(nil)
	_ cdc.StatusReporter    = (*Source)(nil)
)

// Source reads DynamoDB tables: a parallel Scan for the initial load and the
// tables' DynamoDB Streams afterwards. It only reads; DynamoDB Streams keeps no
// consumer state, so there is nothing on the production side to reset.
//
// URL: dynamodb://?region=REGION&endpoint=URL; the pipeline's tables: name the
// DynamoDB tables.
type Source struct {
	// Tables, Target: from the URL and the pipeline's tables:.
	Tables []string
	Target iddb.Target
	// DB and Streams are the clients; New leaves them nil and Open connects.
	DB      TableAPI
	Streams StreamsAPI
	// Tuning adjusts the stream reader's timings.
	Tuning Tuning

	mu   sync.Mutex
	info map[string]*ddb.TableDescription
}

// New creates a Source from pipeline options; it does not connect.
func New(opts cdc.SourceOptions) (*Source, error) {
	t, err := iddb.ParseStoreURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("dynamodb source: %w", err)
	}
	return &Source{Tables: opts.Tables, Target: t}, nil
}

// connect creates the clients on first use (status and verify call in without
// Open).
func (s *Source) connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.DB == nil {
		c, err := iddb.NewClient(ctx, s.Target, 32)
		if err != nil {
			return fmt.Errorf("dynamodb source: %w", err)
		}
		s.DB = c
	}
	if s.Streams == nil {
		c, err := iddb.NewStreamsClient(ctx, s.Target, 32)
		if err != nil {
			return fmt.Errorf("dynamodb source: %w", err)
		}
		s.Streams = c
	}
	return nil
}

// describe returns every selected table's description, checking each exists and
// streams NEW_AND_OLD_IMAGES; all problems are reported at once.
func (s *Source) describe(ctx context.Context) (map[string]*ddb.TableDescription, error) {
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	info := map[string]*ddb.TableDescription{}
	var problems []string
	for _, name := range s.Tables {
		out, err := s.DB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		var nf *ddb.ResourceNotFoundException
		switch {
		case errors.As(err, &nf):
			problems = append(problems, fmt.Sprintf("dynamodb source: table %s does not exist", name))
			continue
		case err != nil:
			return nil, fmt.Errorf("dynamodb source: describe table %s: %w", name, err)
		}
		if _, err := checkStream(name, out.Table); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		info[name] = out.Table
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	s.mu.Lock()
	s.info = info
	s.mu.Unlock()
	return info, nil
}

// Open checks every selected table (exists, streams NEW_AND_OLD_IMAGES) and
// describes it: the key and index attributes as columns (the table is Partial:
// other attributes are free-form), the key, and the secondary indexes.
func (s *Source) Open(ctx context.Context) ([]cdc.Table, error) {
	info, err := s.describe(ctx)
	if err != nil {
		return nil, err
	}
	tables := make([]cdc.Table, 0, len(s.Tables))
	for _, name := range s.Tables {
		tables = append(tables, Schema(info[name]))
	}
	return tables, nil
}

// Schema describes a DynamoDB table in the change model.
func Schema(d *ddb.TableDescription) cdc.Table {
	t := cdc.Table{Name: aws.ToString(d.TableName), Partial: true}
	t.Key = iddb.KeyNames(d.KeySchema)
	types := map[string]string{}
	for _, a := range d.AttributeDefinitions {
		types[aws.ToString(a.AttributeName)] = string(a.AttributeType)
	}
	names := append([]string(nil), t.Key...)
	var rest []string
	for n := range types {
		if !slices.Contains(names, n) {
			rest = append(rest, n)
		}
	}
	slices.Sort(rest)
	for _, n := range append(names, rest...) {
		typ := types[n]
		t.Columns = append(t.Columns, cdc.Column{Name: n, Type: typ, Kind: attrKind(typ), Nullable: !t.IsKey(n)})
	}
	for _, g := range d.GlobalSecondaryIndexes {
		t.Indexes = append(t.Indexes, index(aws.ToString(g.IndexName), g.KeySchema, g.Projection, false))
	}
	for _, l := range d.LocalSecondaryIndexes {
		t.Indexes = append(t.Indexes, index(aws.ToString(l.IndexName), l.KeySchema, l.Projection, true))
	}
	return t
}

func index(name string, ks []ddb.KeySchemaElement, p *ddb.Projection, local bool) cdc.Index {
	ix := cdc.Index{Name: name, Key: iddb.KeyNames(ks), Local: local, Projection: "ALL"}
	if p != nil {
		ix.Projection = string(p.ProjectionType)
		ix.Include = append([]string(nil), p.NonKeyAttributes...)
	}
	return ix
}

func attrKind(t string) cdc.Kind {
	switch t {
	case "S":
		return cdc.KindString
	case "N":
		return cdc.KindDecimal
	case "B":
		return cdc.KindBytes
	}
	return cdc.KindUnknown
}

// BeginSnapshot captures every selected stream's shards before any item is
// scanned: shards already closed hold only changes the scan will see, open ones
// are read from their oldest record (changes older than the capture are skipped
// by time, see Position.Since). Replaying from there over the scan converges.
func (s *Source) BeginSnapshot(ctx context.Context, resume cdc.Position) (cdc.Snapshot, error) {
	info, err := s.tableInfo(ctx)
	if err != nil {
		return nil, err
	}
	if resume != nil {
		pos, err := ParsePosition(resume)
		if err != nil {
			return nil, err
		}
		return &snapshot{s: s, pos: pos, info: info}, nil
	}
	start := time.Now().UTC()
	pos := newPosition()
	pos.Since, pos.At = start.Add(-sinceMargin), start
	for _, name := range s.Tables {
		d := info[name]
		arn := aws.ToString(d.LatestStreamArn)
		r := newReader(s.Streams, pos, map[string]string{name: arn}, s.Tuning)
		shards, err := r.list(ctx, name, "")
		if err != nil {
			return nil, err
		}
		tp := pos.table(name, arn)
		for _, sh := range shards {
			closed := sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil
			tp.Shards[aws.ToString(sh.ShardId)] = &ShardPos{Parent: aws.ToString(sh.ParentShardId), Done: closed}
		}
		pos.Segments[name] = segmentsFor(aws.ToInt64(d.ItemCount), aws.ToInt64(d.TableSizeBytes))
	}
	return &snapshot{s: s, pos: pos, info: info}, nil
}

func (s *Source) tableInfo(ctx context.Context) (map[string]*ddb.TableDescription, error) {
	s.mu.Lock()
	info := s.info
	s.mu.Unlock()
	if info != nil {
		return info, nil
	}
	return s.describe(ctx)
}

// Stream follows every selected table's stream from pos.
func (s *Source) Stream(ctx context.Context, from cdc.Position, out chan<- cdc.Batch) error {
	pos, err := ParsePosition(from)
	if err != nil {
		return err
	}
	info, err := s.tableInfo(ctx)
	if err != nil {
		return err
	}
	arns := map[string]string{}
	for _, name := range s.Tables {
		arns[name] = aws.ToString(info[name].LatestStreamArn)
	}
	return newReader(s.Streams, pos, arns, s.Tuning).run(ctx, out)
}

// Ack does nothing: DynamoDB Streams keeps no consumer position; the pipeline's
// checkpoint (per shard) is the only record of progress.
func (s *Source) Ack(ctx context.Context, pos cdc.Position) error { return nil }

// Close releases nothing: the SDK clients hold only idle HTTP connections.
func (s *Source) Close() error { return nil }

// FormatPosition renders a position per table and shard.
func (s *Source) FormatPosition(pos cdc.Position) string {
	p, err := ParsePosition(pos)
	if err != nil {
		return fmt.Sprintf("unreadable dynamodb position (%v)", err)
	}
	return p.String()
}

// SourceStatus reports, per table, the shards still being read and the age of
// the oldest record not yet applied.
func (s *Source) SourceStatus(ctx context.Context, pos cdc.Position) (string, error) {
	p, err := ParsePosition(pos)
	if err != nil {
		return "", err
	}
	if err := s.connect(ctx); err != nil {
		return "", err
	}
	var parts []string
	for _, name := range sortedKeys(p.Tables) {
		tp := p.Tables[name]
		open, oldest := 0, time.Time{}
		for _, id := range sortedKeys(tp.Shards) {
			sh := tp.Shards[id]
			if sh.Done {
				continue
			}
			open++
			at, err := s.firstUnread(ctx, tp.Stream, id, sh.Seq)
			if err != nil {
				return "", fmt.Errorf("table %s shard %s: %w", name, id, err)
			}
			if !at.IsZero() && (oldest.IsZero() || at.Before(oldest)) {
				oldest = at
			}
		}
		age := "no unread records"
		if !oldest.IsZero() {
			age = fmt.Sprintf("oldest unread record %s old", time.Since(oldest).Round(time.Second))
		}
		parts = append(parts, fmt.Sprintf("%s: %d shard(s) being read, %s", name, open, age))
	}
	return strings.Join(parts, "; "), nil
}

// firstUnread returns the creation time of the first record after seq in a
// shard (zero when there is none yet).
func (s *Source) firstUnread(ctx context.Context, arn, shard, seq string) (time.Time, error) {
	in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(arn), ShardId: aws.String(shard),
		ShardIteratorType: streams.ShardIteratorTypeTrimHorizon}
	if seq != "" {
		in.ShardIteratorType, in.SequenceNumber = streams.ShardIteratorTypeAfterSequenceNumber, aws.String(seq)
	}
	it, err := s.Streams.GetShardIterator(ctx, in)
	if err != nil {
		if iddb.ErrorCode(err) == "TrimmedDataAccessException" {
			return time.Time{}, fmt.Errorf("the checkpointed record was trimmed (24 h retention): %w", cdc.ErrPositionLost)
		}
		return time.Time{}, err
	}
	iter := it.ShardIterator
	// An open shard can answer a few empty pages before its next record.
	for range 3 {
		if iter == nil {
			break
		}
		out, err := s.Streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(1)})
		if err != nil {
			return time.Time{}, err
		}
		if len(out.Records) > 0 && out.Records[0].Dynamodb != nil {
			return aws.ToTime(out.Records[0].Dynamodb.ApproximateCreationDateTime), nil
		}
		iter = out.NextShardIterator
	}
	return time.Time{}, nil
}
