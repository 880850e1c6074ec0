package dynamodb_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/understudy/understudy/cdc"
	iddb "github.com/understudy/understudy/internal/ddb"
	_ "github.com/understudy/understudy/sinks/dynamodb"
	"github.com/understudy/understudy/sinks/sinktest"
	"github.com/understudy/understudy/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var regions atomic.Int64

// freshRegion returns a target URL of its own: DynamoDB Local keeps the tables
// of each region apart, so every region starts empty.
func freshRegion(t *testing.T) string {
	srv := testenv.DynamoDB(t)
	return fmt.Sprintf("dynamodb://?region=sinktest-%d&endpoint=%s", regions.Add(1), srv.Endpoint)
}

func TestContract(t *testing.T) {
	if testing.Short() {
		t.Skip("runs DynamoDB Local")
	}
	sinktest.Run(t, sinktest.Env{
		NewTarget: freshRegion,
		NewForeignTarget: func(t *testing.T) string {
			u := freshRegion(t)
			// Someone's own table with data, never created by understudy.
			tg, err := iddb.ParseStoreURL(u)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			c, err := iddb.NewClient(ctx, tg, 2)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("accounts"), BillingMode: ddb.BillingModePayPerRequest,
				AttributeDefinitions: []ddb.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddb.ScalarAttributeTypeN}},
				KeySchema:            []ddb.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddb.KeyTypeHash}}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("accounts"),
				Item: map[string]ddb.AttributeValue{"id": &ddb.AttributeValueMemberN{Value: "1"}}})
			if err != nil {
				t.Fatal(err)
			}
			return u
		},
		// DynamoDB numbers keep no scale ("12.50" is stored as 12.5): a decimal
		// comes from a SQL source as numeric(p,s), whose scale ReadTable restores.
		Types: map[cdc.Kind]string{cdc.KindInt: "N", cdc.KindString: "S", cdc.KindDecimal: "numeric(14,2)",
			cdc.KindBytes: "B", cdc.KindBool: "BOOL", cdc.KindTimestamp: "S"},
		Table: func(name string) string { return name },
	})
}
