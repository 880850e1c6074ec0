// Package dynamodb is the DynamoDB target: it creates the replica tables with the
// source's key schema and secondary indexes, marks them as replicas, and writes
// items with BatchWriteItem (upserts and deletes by key, so every write is
// idempotent).
//
// URL: dynamodb://?region=REGION&endpoint=URL; the tables have the source
// tables' names. DynamoDB has no transactions across a batch, so checkpoints go
// to the configured checkpoint store (file:, redis://, dynamodb://); a crash
// between the write and the checkpoint replays the batch, which converges.
package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/understudy/understudy/cdc"
	iddb "github.com/understudy/understudy/internal/ddb"
	"github.com/understudy/understudy/sinks"
)

func init() {
	sinks.Register(func(ctx context.Context, opts sinks.Options) (sinks.Sink, error) {
		return Open(ctx, opts)
	}, "dynamodb")
}

var (
	_ sinks.Sink        = (*Sink)(nil)
	_ sinks.TableReader = (*Sink)(nil)
)

// The replica marker. On AWS it is a tag on the table; DynamoDB Local has no
// tagging, so there the marker is an item in a table of its own, keyed by the
// table name and valid only for the table created at that time (a table dropped
// and recreated by someone else is not marked).
const (
	MarkerTag   = "understudy:replica"
	MarkerTable = "understudy-replicas"
)

// Writers is how many BatchWriteItem calls one Load or Apply runs at once.
const Writers = 8

// Sink writes to DynamoDB tables.
type Sink struct {
	target   iddb.Target
	pipeline string
	source   string
	db       *dynamodb.Client

	noTags atomic.Bool // the endpoint has no tagging API (DynamoDB Local)
	mu     sync.Mutex
	tables map[string]cdc.Table // prepared tables
}

// Open parses the target URL and creates the client. It writes nothing.
func Open(ctx context.Context, opts sinks.Options) (*Sink, error) {
	t, err := iddb.ParseStoreURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("dynamodb target: %w", err)
	}
	c, err := iddb.NewClient(ctx, t, 2*Writers*4)
	if err != nil {
		return nil, fmt.Errorf("dynamodb target: %w", err)
	}
	return &Sink{target: t, pipeline: opts.Pipeline, source: opts.SourceURL, db: c, tables: map[string]cdc.Table{}}, nil
}

func (s *Sink) where() string {
	w := s.target.Region
	if s.target.Endpoint != "" {
		w += " at " + s.target.Endpoint
	}
	return strings.TrimSpace(w)
}

// describe returns the table's description, or nil when it does not exist.
func (s *Sink) describe(ctx context.Context, name string) (*ddb.TableDescription, error) {
	out, err := s.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	var nf *ddb.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dynamodb target: describe table %s: %w", name, err)
	}
	return out.Table, nil
}

// notReplica is the refusal of an existing table without the marker.
func (s *Sink) notReplica(name string) error {
	return fmt.Errorf("dynamodb target: table %s (%s) exists and is not marked as an understudy replica (tag %s); understudy writes only to tables it created: delete it, or tag it %s=%s if it is a test table: %w",
		name, s.where(), MarkerTag, MarkerTag, s.pipeline, sinks.ErrNotReplica)
}

// Prepare checks every table first (no write before every check passed): an
// existing table must carry the marker and the same key as the source, and no
// target table may be a source table. Then it creates the missing tables, with
// the source's key schema and secondary indexes, and marks them.
func (s *Sink) Prepare(ctx context.Context, tables []cdc.Table) error {
	if err := s.notSource(ctx, tables); err != nil {
		return err
	}
	var missing []cdc.Table
	for _, t := range tables {
		d, err := s.describe(ctx, t.Name)
		if err != nil {
			return err
		}
		if d == nil {
			missing = append(missing, t)
			continue
		}
		ok, err := s.marked(ctx, d)
		if err != nil {
			return err
		}
		if !ok {
			return s.notReplica(t.Name)
		}
		if got := iddb.KeyNames(d.KeySchema); strings.Join(got, ",") != strings.Join(t.Key, ",") {
			return fmt.Errorf("dynamodb target: table %s has key (%s) but the source's key is (%s); run `understudy reset` after deleting the target table so understudy recreates it",
				t.Name, strings.Join(got, ", "), strings.Join(t.Key, ", "))
		}
	}
	for _, t := range missing {
		if err := s.create(ctx, t); err != nil {
			return err
		}
	}
	s.mu.Lock()
	for _, t := range tables {
		s.tables[t.Name] = t
	}
	s.mu.Unlock()
	return nil
}

// notSource refuses target tables that are the source's tables. The config
// already refuses a target URL equal to the source URL; this also catches two
// URLs that reach one account and region (a table's TableId is unique).
func (s *Sink) notSource(ctx context.Context, tables []cdc.Table) error {
	u, err := url.Parse(s.source)
	if err != nil || u.Scheme != "dynamodb" {
		return nil
	}
	src, err := iddb.ParseStoreURL(s.source)
	if err != nil {
		return nil // the source reports its own URL problems
	}
	if src.Region == s.target.Region && src.Endpoint == s.target.Endpoint {
		return fmt.Errorf("dynamodb target: the target (%s) is the source: %w", s.where(), sinks.ErrNotReplica)
	}
	if src.IsLocal() || s.target.IsLocal() {
		return nil // DynamoDB Local has no TableIds; its regions are separate stores
	}
	c, err := iddb.NewClient(ctx, src, 2)
	if err != nil {
		return nil
	}
	for _, t := range tables {
		sd, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.Name)})
		if err != nil || sd.Table.TableId == nil {
			continue
		}
		td, err := s.describe(ctx, t.Name)
		if err != nil {
			return err
		}
		if td != nil && aws.ToString(td.TableId) == aws.ToString(sd.Table.TableId) {
			return fmt.Errorf("dynamodb target: table %s of the target is the source table itself (same TableId); use other credentials or region for the target: %w", t.Name, sinks.ErrNotReplica)
		}
	}
	return nil
}

// marked reports whether table d carries the replica marker.
func (s *Sink) marked(ctx context.Context, d *ddb.TableDescription) (bool, error) {
	if !s.noTags.Load() {
		in := &dynamodb.ListTagsOfResourceInput{ResourceArn: d.TableArn}
		for {
			out, err := s.db.ListTagsOfResource(ctx, in)
			if iddb.ErrorCode(err) == "UnknownOperationException" {
				s.noTags.Store(true)
				break
			}
			if err != nil {
				return false, fmt.Errorf("dynamodb target: reading the tags of %s (grant dynamodb:ListTagsOfResource): %w", aws.ToString(d.TableName), err)
			}
			for _, tag := range out.Tags {
				if aws.ToString(tag.Key) == MarkerTag {
					return true, nil
				}
			}
			if out.NextToken == nil {
				return false, nil
			}
			in.NextToken = out.NextToken
		}
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(MarkerTable), ConsistentRead: aws.Bool(true),
		Key: map[string]ddb.AttributeValue{"pk": &ddb.AttributeValueMemberS{Value: aws.ToString(d.TableName)}}})
	var nf *ddb.ResourceNotFoundException
	if errors.As(err, &nf) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("dynamodb target: reading replica markers: %w", err)
	}
	created, _ := out.Item["created"].(*ddb.AttributeValueMemberN)
	return created != nil && created.Value == createdStamp(d), nil
}

func createdStamp(d *ddb.TableDescription) string {
	return strconv.FormatInt(aws.ToTime(d.CreationDateTime).UnixMilli(), 10)
}

// mark puts the replica marker on table d.
func (s *Sink) mark(ctx context.Context, d *ddb.TableDescription) error {
	if !s.noTags.Load() {
		_, err := s.db.TagResource(ctx, &dynamodb.TagResourceInput{ResourceArn: d.TableArn,
			Tags: []ddb.Tag{{Key: aws.String(MarkerTag), Value: aws.String(s.pipeline)}}})
		if err == nil {
			return nil
		}
		if iddb.ErrorCode(err) != "UnknownOperationException" {
			return fmt.Errorf("dynamodb target: tagging %s as a replica (grant dynamodb:TagResource): %w", aws.ToString(d.TableName), err)
		}
		s.noTags.Store(true)
	}
	if err := iddb.EnsureTable(ctx, s.db, MarkerTable, ""); err != nil {
		return fmt.Errorf("dynamodb target: %w", err)
	}
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(MarkerTable), Item: map[string]ddb.AttributeValue{
		"pk":       &ddb.AttributeValueMemberS{Value: aws.ToString(d.TableName)},
		"created":  &ddb.AttributeValueMemberN{Value: createdStamp(d)},
		"pipeline": &ddb.AttributeValueMemberS{Value: s.pipeline},
	}})
	if err != nil {
		return fmt.Errorf("dynamodb target: marking %s as a replica: %w", aws.ToString(d.TableName), err)
	}
	return nil
}

// create makes the table with t's key and indexes (on-demand capacity) and
// marks it.
func (s *Sink) create(ctx context.Context, t cdc.Table) error {
	if len(t.Key) == 0 || len(t.Key) > 2 {
		return fmt.Errorf("dynamodb target: table %s needs a key of one or two columns (partition and sort key), not %d", t.Name, len(t.Key))
	}
	defs := map[string]bool{}
	in := &dynamodb.CreateTableInput{TableName: aws.String(t.Name), BillingMode: ddb.BillingModePayPerRequest,
		Tags: []ddb.Tag{{Key: aws.String(MarkerTag), Value: aws.String(s.pipeline)}}}
	define := func(col string) {
		if !defs[col] {
			defs[col] = true
			in.AttributeDefinitions = append(in.AttributeDefinitions, ddb.AttributeDefinition{
				AttributeName: aws.String(col), AttributeType: keyType(t, col)})
		}
	}
	schema := func(key []string) []ddb.KeySchemaElement {
		ks := make([]ddb.KeySchemaElement, len(key))
		for i, k := range key {
			define(k)
			ks[i] = ddb.KeySchemaElement{AttributeName: aws.String(k), KeyType: ddb.KeyTypeHash}
			if i > 0 {
				ks[i].KeyType = ddb.KeyTypeRange
			}
		}
		return ks
	}
	in.KeySchema = schema(t.Key)
	for _, ix := range t.Indexes {
		if len(ix.Key) == 0 {
			continue
		}
		p := &ddb.Projection{ProjectionType: ddb.ProjectionType(ix.Projection)}
		if ix.Projection == "" {
			p.ProjectionType = ddb.ProjectionTypeAll
		}
		if p.ProjectionType == ddb.ProjectionTypeInclude {
			p.NonKeyAttributes = ix.Include
		}
		if ix.Local {
			in.LocalSecondaryIndexes = append(in.LocalSecondaryIndexes, ddb.LocalSecondaryIndex{
				IndexName: aws.String(ix.Name), KeySchema: schema(ix.Key), Projection: p})
		} else {
			in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, ddb.GlobalSecondaryIndex{
				IndexName: aws.String(ix.Name), KeySchema: schema(ix.Key), Projection: p})
		}
	}
	_, err := s.db.CreateTable(ctx, in)
	var inUse *ddb.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("dynamodb target: create table %s (grant dynamodb:CreateTable and dynamodb:TagResource): %w", t.Name, err)
	}
	w := dynamodb.NewTableExistsWaiter(s.db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 200*time.Millisecond, 5*time.Second
	})
	out, err := w.WaitForOutput(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.Name)}, 10*time.Minute)
	if err != nil {
		return fmt.Errorf("dynamodb target: waiting for table %s: %w", t.Name, err)
	}
	return s.mark(ctx, out.Table)
}

// keyType is the attribute type of key or index column col.
func keyType(t cdc.Table, col string) ddb.ScalarAttributeType {
	c, _ := t.Column(col)
	switch c.Type {
	case "S", "N", "B":
		return ddb.ScalarAttributeType(c.Type)
	}
	switch c.Kind {
	case cdc.KindInt, cdc.KindUint, cdc.KindFloat, cdc.KindDecimal:
		return ddb.ScalarAttributeTypeN
	case cdc.KindBytes:
		return ddb.ScalarAttributeTypeB
	}
	return ddb.ScalarAttributeTypeS
}

// table returns the prepared description of name (a bare one when Prepare did
// not see it: keys are then taken from the change).
func (s *Sink) table(name string) (cdc.Table, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tables[name]
	return t, ok
}

// Clear deletes every item of the tables (the tables, their indexes and marker
// stay). It refuses a table without the marker.
func (s *Sink) Clear(ctx context.Context, tables []string) error {
	for _, name := range tables {
		d, err := s.describe(ctx, name)
		if err != nil {
			return err
		}
		if d == nil {
			continue
		}
		ok, err := s.marked(ctx, d)
		if err != nil {
			return err
		}
		if !ok {
			return s.notReplica(name)
		}
		if err := s.clear(ctx, name, iddb.KeyNames(d.KeySchema)); err != nil {
			return err
		}
	}
	return nil
}

// Close releases nothing: the client holds only idle connections.
func (s *Sink) Close() error { return nil }
