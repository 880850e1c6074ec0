package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/testenv"
)

// A scan segment read part-way resumes from the cursor of its last emitted page:
// together the two reads return every item of the segment exactly once.
func TestScanSegmentResumesFromCursor(t *testing.T) {
	srv := testenv.DynamoDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("understudy", "local", "")))
	if err != nil {
		t.Fatal(err)
	}
	c := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.Endpoint) })
	name := fmt.Sprintf("resume_%d", time.Now().UnixNano()%1e9)
	if _, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(name), BillingMode: ddb.BillingModePayPerRequest,
		AttributeDefinitions: []ddb.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddb.ScalarAttributeTypeS}},
		KeySchema:            []ddb.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddb.KeyTypeHash}},
		StreamSpecification:  &ddb.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: ddb.StreamViewTypeNewAndOldImages},
	}); err != nil {
		t.Fatal(err)
	}
	// 1 MB scan pages: 160 items of 60 KB make segments of several pages.
	pad := strings.Repeat("x", 60_000)
	for i := range 160 {
		if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(name), Item: map[string]ddb.AttributeValue{
			"id": &ddb.AttributeValueMemberS{Value: fmt.Sprintf("customer-%03d", i)}, "pad": &ddb.AttributeValueMemberS{Value: pad},
		}}); err != nil {
			t.Fatal(err)
		}
	}

	src, err := cdc.NewSource(ctx, cdc.SourceOptions{URL: "dynamodb://?region=us-east-1&endpoint=" + srv.Endpoint, Pipeline: "p", Tables: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	tables, err := src.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.BeginSnapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	rs, ok := snap.(cdc.ResumableSnapshot)
	if !ok {
		t.Fatal("the DynamoDB snapshot is not a cdc.ResumableSnapshot")
	}
	chunks, err := snap.Chunks(ctx, tables[0])
	if err != nil {
		t.Fatal(err)
	}
	ids := func(rows []cdc.Row, into map[string]int) {
		for _, r := range rows {
			into[r["id"].(string)]++
		}
	}
	resumed := 0
	for _, ch := range chunks {
		whole := map[string]int{}
		if err := snap.ReadChunk(ctx, ch, func(rows []cdc.Row) error { ids(rows, whole); return nil }); err != nil {
			t.Fatal(err)
		}
		// Stop after the first page, as a kill would, then resume from its cursor.
		stop := errors.New("killed")
		parts := map[string]int{}
		var cursor []byte
		err := rs.ReadChunkFrom(ctx, ch, nil, func(rows []cdc.Row, next []byte) error {
			ids(rows, parts)
			cursor = next
			return stop
		})
		if !errors.Is(err, stop) && err != nil {
			t.Fatal(err)
		}
		if cursor == nil {
			continue // a one-page segment: nothing to resume
		}
		resumed++
		if strings.Contains(string(cursor), pad[:100]) {
			t.Fatal("the cursor holds more than the key")
		}
		if err := rs.ReadChunkFrom(ctx, ch, cursor, func(rows []cdc.Row, _ []byte) error { ids(rows, parts); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(parts) != len(whole) {
			t.Fatalf("chunk %s: first page + resumed read gave %d items, the whole segment %d", ch.ID, len(parts), len(whole))
		}
		for id, n := range parts {
			if n != 1 || whole[id] != 1 {
				t.Fatalf("chunk %s: item %s read %d times in the resumed read", ch.ID, id, n)
			}
		}
	}
	if resumed == 0 {
		t.Fatal("no segment spanned more than one page; the test proves nothing")
	}
}
