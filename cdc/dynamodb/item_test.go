package dynamodb_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	st "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/understudy/understudy/cdc"
	source "github.com/understudy/understudy/cdc/dynamodb"
	"github.com/understudy/understudy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestDecimal(t *testing.T) {
	for in, want := range map[string]string{
		"0": "0", "-0": "0", "0.000": "0", "1.50": "1.5", "+7": "7", "007.10": "7.1",
		"1E+3": "1000", "1.5e2": "150", "12.5E-3": "0.0125", "-.5": "-0.5",
		"123456789012345678901234567890123456.78": "123456789012345678901234567890123456.78",
	} {
		got, err := source.Decimal(in)
		if err != nil || string(got) != want {
			t.Errorf("Decimal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-", "1.2.3", "abc", "1e", "1e999"} {
		if _, err := source.Decimal(bad); err == nil {
			t.Errorf("Decimal(%q) accepted", bad)
		}
	}
}

func item() map[string]ddb.AttributeValue {
	return map[string]ddb.AttributeValue{
		"id":     &ddb.AttributeValueMemberS{Value: "u1"},
		"n":      &ddb.AttributeValueMemberN{Value: "12.50"},
		"b":      &ddb.AttributeValueMemberB{Value: []byte{0, 1, 2}},
		"ok":     &ddb.AttributeValueMemberBOOL{Value: true},
		"gone":   &ddb.AttributeValueMemberNULL{Value: true},
		"tags":   &ddb.AttributeValueMemberSS{Value: []string{"b", "a"}},
		"scores": &ddb.AttributeValueMemberNS{Value: []string{"10", "-1", "2.5"}},
		"blobs":  &ddb.AttributeValueMemberBS{Value: [][]byte{{9}, {1}}},
		"profile": &ddb.AttributeValueMemberM{Value: map[string]ddb.AttributeValue{
			"email": &ddb.AttributeValueMemberS{Value: "a@example.com"},
			"age":   &ddb.AttributeValueMemberN{Value: "42"},
			"x":     &ddb.AttributeValueMemberNULL{Value: true},
		}},
		"phones": &ddb.AttributeValueMemberL{Value: []ddb.AttributeValue{
			&ddb.AttributeValueMemberS{Value: "+1 555"}, &ddb.AttributeValueMemberN{Value: "1e2"},
		}},
	}
}

func TestNormalize(t *testing.T) {
	row, err := source.Normalize(item())
	if err != nil {
		t.Fatal(err)
	}
	want := cdc.Row{
		"id": "u1", "n": cdc.Decimal("12.5"), "b": []byte{0, 1, 2}, "ok": true, "gone": nil,
		"tags":    []any{"a", "b"},
		"scores":  []any{cdc.Decimal("-1"), cdc.Decimal("2.5"), cdc.Decimal("10")},
		"blobs":   []any{[]byte{1}, []byte{9}},
		"profile": cdc.JSON(`{"age":42,"email":"a@example.com","x":null}`),
		"phones":  cdc.JSON(`["+1 555",100]`),
	}
	if !reflect.DeepEqual(row, want) {
		t.Errorf("Normalize =\n%#v\nwant\n%#v", row, want)
	}
}

var tables atomic.Int64

// The same item normalizes identically from a Scan and from its stream record,
// read from DynamoDB Local.
func TestScanAndStreamAgree(t *testing.T) {
	srv := testenv.DynamoDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("understudy", "local", "")))
	if err != nil {
		t.Fatal(err)
	}
	c := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(srv.Endpoint) })
	sc := dynamodbstreams.NewFromConfig(cfg, func(o *dynamodbstreams.Options) { o.BaseEndpoint = aws.String(srv.Endpoint) })

	create := func(spec *ddb.StreamSpecification) string {
		name := fmt.Sprintf("src_%d_%d", time.Now().UnixNano()%1e9, tables.Add(1))
		_, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName: aws.String(name), BillingMode: ddb.BillingModePayPerRequest,
			AttributeDefinitions: []ddb.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddb.ScalarAttributeTypeS}},
			KeySchema:            []ddb.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddb.KeyTypeHash}},
			StreamSpecification:  spec,
		})
		if err != nil {
			t.Fatal(err)
		}
		return name
	}
	// Tables without the right stream are refused with the fix in the message.
	for _, spec := range []*ddb.StreamSpecification{nil, {StreamEnabled: aws.Bool(true), StreamViewType: ddb.StreamViewTypeKeysOnly}} {
		name := create(spec)
		_, err := source.StreamARN(ctx, c, name)
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "NEW_AND_OLD_IMAGES") {
			t.Errorf("StreamARN of %s (%+v): %v", name, spec, err)
		}
	}
	if _, err := source.StreamARN(ctx, c, "no_such_table"); err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Errorf("StreamARN of a missing table: %v", err)
	}

	name := create(&ddb.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: ddb.StreamViewTypeNewAndOldImages})
	arn, err := source.StreamARN(ctx, c, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(name), Item: item()}); err != nil {
		t.Fatal(err)
	}
	scan, err := c.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(name), ConsistentRead: aws.Bool(true)})
	if err != nil || len(scan.Items) != 1 {
		t.Fatalf("Scan: %v (%d items)", err, len(scan.Items))
	}
	fromScan, err := source.Normalize(scan.Items[0])
	if err != nil {
		t.Fatal(err)
	}

	desc, err := sc.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn)})
	if err != nil || len(desc.StreamDescription.Shards) == 0 {
		t.Fatalf("DescribeStream: %v", err)
	}
	it, err := sc.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
		StreamArn: aws.String(arn), ShardId: desc.StreamDescription.Shards[0].ShardId,
		ShardIteratorType: st.ShardIteratorTypeTrimHorizon,
	})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := sc.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil || len(recs.Records) != 1 {
		t.Fatalf("GetRecords: %v (%d records)", err, len(recs.Records))
	}
	fromStream, err := source.NormalizeStream(recs.Records[0].Dynamodb.NewImage)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromScan, fromStream) {
		t.Errorf("scan and stream disagree:\nscan   %#v\nstream %#v", fromScan, fromStream)
	}
	for k, v := range fromScan {
		if cdc.Canonical(v) != cdc.Canonical(fromStream[k]) {
			t.Errorf("%s: canonical text differs", k)
		}
	}
}
