package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	iddb "github.com/understudy/understudy/internal/ddb"
	"github.com/understudy/understudy/testenv"
)

// These tests run the CLI in-process against DynamoDB Local: production and
// test are two regions of one DynamoDB Local (it keeps each region's tables
// apart), and the mappings and checkpoints live in DynamoDB too, so status and
// verify run beside a sync.

var ddbRegions atomic.Int64

type shop struct {
	srv              *testenv.DynamoDBServer
	prod, test       *dynamodb.Client
	config           string
	prodURL, testURL string
	canaries         []string
}

// Canary values: production data that must never appear in any target, store or
// output. Each sits where a rule rewrites it (the key, a plain attribute, inside
// a map, inside a list).
const (
	canaryKey   = "canary.key.7f3a@corp.example"
	canaryName  = "Canarysurname7f3a"
	canaryEmail = "canary.nested.7f3a@corp.example"
	canaryPhone = "+1 555 0107 7f3a"
)

func newShop(t *testing.T) *shop {
	t.Helper()
	if testing.Short() {
		t.Skip("runs DynamoDB Local")
	}
	srv := testenv.DynamoDB(t)
	n := ddbRegions.Add(1)
	s := &shop{srv: srv,
		prodURL:  fmt.Sprintf("dynamodb://?region=prod-%d&endpoint=%s", n, srv.Endpoint),
		testURL:  fmt.Sprintf("dynamodb://?region=test-%d&endpoint=%s", n, srv.Endpoint),
		canaries: []string{canaryKey, canaryName, canaryEmail, canaryPhone}}
	s.prod, s.test = ddbClient(t, s.prodURL), ddbClient(t, s.testURL)
	ctx := context.Background()
	stream := &ddb.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: ddb.StreamViewTypeNewAndOldImages}
	_, err := s.prod.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("customers"), BillingMode: ddb.BillingModePayPerRequest,
		StreamSpecification: stream,
		AttributeDefinitions: []ddb.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: ddb.ScalarAttributeTypeS},
			{AttributeName: aws.String("tenant"), AttributeType: ddb.ScalarAttributeTypeN}},
		KeySchema: []ddb.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: ddb.KeyTypeHash}},
		GlobalSecondaryIndexes: []ddb.GlobalSecondaryIndex{{IndexName: aws.String("by_tenant"),
			KeySchema:  []ddb.KeySchemaElement{{AttributeName: aws.String("tenant"), KeyType: ddb.KeyTypeHash}},
			Projection: &ddb.Projection{ProjectionType: ddb.ProjectionTypeKeysOnly}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.prod.CreateTable(ctx, &dynamodb.CreateTableInput{TableName: aws.String("orders"), BillingMode: ddb.BillingModePayPerRequest,
		StreamSpecification: stream,
		AttributeDefinitions: []ddb.AttributeDefinition{{AttributeName: aws.String("customer"), AttributeType: ddb.ScalarAttributeTypeS},
			{AttributeName: aws.String("no"), AttributeType: ddb.ScalarAttributeTypeN},
			{AttributeName: aws.String("placed"), AttributeType: ddb.ScalarAttributeTypeS}},
		KeySchema: []ddb.KeySchemaElement{{AttributeName: aws.String("customer"), KeyType: ddb.KeyTypeHash},
			{AttributeName: aws.String("no"), KeyType: ddb.KeyTypeRange}},
		LocalSecondaryIndexes: []ddb.LocalSecondaryIndex{{IndexName: aws.String("by_placed"),
			KeySchema: []ddb.KeySchemaElement{{AttributeName: aws.String("customer"), KeyType: ddb.KeyTypeHash},
				{AttributeName: aws.String("placed"), KeyType: ddb.KeyTypeRange}},
			Projection: &ddb.Projection{ProjectionType: ddb.ProjectionTypeAll}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		s.putCustomer(t, fmt.Sprintf("user%02d@corp.example", i), fmt.Sprintf("Surname%02d", i%7), fmt.Sprintf("user%02d@corp.example", i))
		s.put(t, "orders", map[string]ddb.AttributeValue{
			"customer": &ddb.AttributeValueMemberS{Value: fmt.Sprintf("user%02d@corp.example", i)},
			"no":       &ddb.AttributeValueMemberN{Value: fmt.Sprint(i)},
			"placed":   &ddb.AttributeValueMemberS{Value: "2024-01-01"},
			"total":    &ddb.AttributeValueMemberN{Value: "12.50"},
		})
	}
	// Odd production states: a NULL name, an empty name, sets, binary.
	s.put(t, "customers", map[string]ddb.AttributeValue{
		"id": &ddb.AttributeValueMemberS{Value: "odd@corp.example"}, "tenant": &ddb.AttributeValueMemberN{Value: "2"},
		"name": &ddb.AttributeValueMemberNULL{Value: true}, "nick": &ddb.AttributeValueMemberS{Value: ""},
		"tags":   &ddb.AttributeValueMemberSS{Value: []string{"vip", "beta"}},
		"scores": &ddb.AttributeValueMemberNS{Value: []string{"1.50", "-2"}},
		"blob":   &ddb.AttributeValueMemberB{Value: []byte{0, 1, 2}},
	})
	s.putCustomer(t, canaryKey, canaryName, canaryEmail)

	dir := t.TempDir()
	s.config = filepath.Join(dir, "understudy.yaml")
	t.Setenv("UNDERSTUDY_SECRET", "e2e-secret-0123456789abcdef")
	t.Setenv("DDB_SRC", s.prodURL)
	t.Setenv("DDB_DST", s.testURL)
	t.Setenv("DDB_STATE", fmt.Sprintf("dynamodb://understudy-state?region=state-%d&endpoint=%s", n, srv.Endpoint))
	t.Setenv("DDB_MAPS", fmt.Sprintf("dynamodb://understudy-maps?region=state-%d&endpoint=%s", n, srv.Endpoint))
	cfg := `
secret: ${UNDERSTUDY_SECRET}
metrics: off
mappings: ${DDB_MAPS}
checkpoints: ${DDB_STATE}
pipelines:
  - name: shop
    source: ${DDB_SRC}
    target: ${DDB_DST}
    tables: [customers, orders]
    rules:
      customers:
        id: {replace: email, domain: email}
        name: {replace: last_name, domain: surname}
        profile:
          json:
            $.email: {replace: email, domain: email}
            $.phones[*]: {replace: phone}
      orders:
        customer: {replace: email, domain: email}
`
	if err := os.WriteFile(s.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

func ddbClient(t *testing.T, u string) *dynamodb.Client {
	t.Helper()
	tg, err := iddb.ParseStoreURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c, err := iddb.NewClient(context.Background(), tg, 4)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *shop) put(t *testing.T, table string, item map[string]ddb.AttributeValue) {
	t.Helper()
	if _, err := s.prod.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item}); err != nil {
		t.Fatal(err)
	}
}

func (s *shop) putCustomer(t *testing.T, id, name, email string) {
	t.Helper()
	s.put(t, "customers", map[string]ddb.AttributeValue{
		"id": &ddb.AttributeValueMemberS{Value: id}, "tenant": &ddb.AttributeValueMemberN{Value: "1"},
		"name": &ddb.AttributeValueMemberS{Value: name},
		"profile": &ddb.AttributeValueMemberM{Value: map[string]ddb.AttributeValue{
			"email":  &ddb.AttributeValueMemberS{Value: email},
			"tier":   &ddb.AttributeValueMemberS{Value: "gold"},
			"phones": &ddb.AttributeValueMemberL{Value: []ddb.AttributeValue{&ddb.AttributeValueMemberS{Value: canaryPhone}}},
		}},
	})
}

func (s *shop) cli(ctx context.Context, args ...string) (int, string) {
	var out bytes.Buffer
	err := run(ctx, append(args, "--config", s.config), strings.NewReader(""), &out, &out)
	return exitCode(err, &out), out.String()
}

// scanAll returns every item of a table as JSON text (nil while it is missing).
func scanAll(c *dynamodb.Client, table string) (map[string]map[string]any, error) {
	out := map[string]map[string]any{}
	in := &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)}
	for {
		page, err := c.Scan(context.Background(), in)
		if err != nil {
			return nil, err
		}
		for _, it := range page.Items {
			m := map[string]any{}
			for k, v := range it {
				m[k] = plain(v)
			}
			key := fmt.Sprint(m["id"])
			if _, ok := it["customer"]; ok {
				key = fmt.Sprint(m["customer"], "/", m["no"])
			}
			out[key] = m
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

// plain renders an attribute value as plain Go data for assertions.
func plain(av ddb.AttributeValue) any {
	switch x := av.(type) {
	case *ddb.AttributeValueMemberS:
		return x.Value
	case *ddb.AttributeValueMemberN:
		return "N:" + x.Value
	case *ddb.AttributeValueMemberNULL:
		return nil
	case *ddb.AttributeValueMemberM:
		m := map[string]any{}
		for k, v := range x.Value {
			m[k] = plain(v)
		}
		return m
	case *ddb.AttributeValueMemberL:
		l := make([]any, len(x.Value))
		for i, v := range x.Value {
			l[i] = plain(v)
		}
		return l
	default:
		b, _ := json.Marshal(av)
		return fmt.Sprintf("%T%s", av, b)
	}
}

func TestDynamoDBLoadSyncVerifyResetStatus(t *testing.T) {
	s := newShop(t)
	ctx := context.Background()
	if code, out := s.cli(ctx, "load"); code != 0 {
		t.Fatalf("load exit %d:\n%s", code, out)
	}
	cust, err := scanAll(s.test, "customers")
	if err != nil {
		t.Fatal(err)
	}
	if len(cust) != 42 {
		t.Fatalf("target has %d customers, want 42", len(cust))
	}
	// Keys are replaced consistently: the same email as key and inside the
	// profile map gets the same replacement; orders find their customer.
	var user00 map[string]any
	for id, c := range cust {
		if strings.HasSuffix(id, "@corp.example") && id != "odd@corp.example" {
			t.Fatalf("production key %q reached the target", id)
		}
		if p, ok := c["profile"].(map[string]any); ok && p["tier"] == "gold" && c["id"] == p["email"] && user00 == nil {
			user00 = c
		}
	}
	if user00 == nil {
		t.Fatalf("no customer whose key and profile.email share a replacement: %v", cust)
	}
	orders, err := scanAll(s.test, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(orders) != 40 {
		t.Fatalf("target has %d orders, want 40", len(orders))
	}
	for _, o := range orders {
		if _, ok := cust[o["customer"].(string)]; !ok {
			t.Fatalf("order's customer %v is not a customer key in the target", o["customer"])
		}
		if o["total"] != "N:12.5" {
			t.Fatalf("order total = %v, want the number 12.5", o["total"])
		}
	}
	// Odd states survive: NULL stays NULL, empty stays empty, sets, binary.
	var odd map[string]any
	for _, c := range cust {
		if c["nick"] == "" {
			odd = c
		}
	}
	if odd == nil || odd["name"] != nil || !strings.Contains(fmt.Sprint(odd["tags"]), `"beta","vip"`) ||
		!strings.Contains(fmt.Sprint(odd["scores"]), `-2`) || !strings.Contains(fmt.Sprint(odd["blob"]), "AAEC") {
		t.Fatalf("odd customer = %v", odd)
	}
	// The target has the source's key schema and indexes, and is a replica.
	d, err := s.test.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("orders")})
	if err != nil || len(d.Table.LocalSecondaryIndexes) != 1 || aws.ToString(d.Table.LocalSecondaryIndexes[0].IndexName) != "by_placed" {
		t.Fatalf("orders target: %v %+v", err, d)
	}
	d, err = s.test.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("customers")})
	if err != nil || len(d.Table.GlobalSecondaryIndexes) != 1 || aws.ToString(d.Table.GlobalSecondaryIndexes[0].IndexName) != "by_tenant" {
		t.Fatalf("customers target: %v %+v", err, d)
	}
	if code, out := s.cli(ctx, "verify"); code != 0 || strings.Count(out, ": ok") != 2 {
		t.Fatalf("verify after load exit %d:\n%s", code, out)
	}

	// sync under writes: a put, an update of a nested attribute, a delete.
	syncCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var syncCode int
	var syncOut string
	wg.Add(1)
	go func() {
		defer wg.Done()
		syncCode, syncOut = s.cli(syncCtx, "sync")
	}()
	t.Cleanup(func() { stop(); wg.Wait() })

	s.putCustomer(t, "new@corp.example", "Surname01", "new@corp.example")
	_, err = s.prod.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String("customers"),
		Key:                       map[string]ddb.AttributeValue{"id": &ddb.AttributeValueMemberS{Value: "user01@corp.example"}},
		UpdateExpression:          aws.String("SET profile.email = :e, profile.tier = :t"),
		ExpressionAttributeValues: map[string]ddb.AttributeValue{":e": &ddb.AttributeValueMemberS{Value: "new@corp.example"}, ":t": &ddb.AttributeValueMemberS{Value: "silver"}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.prod.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String("orders"),
		Key: map[string]ddb.AttributeValue{"customer": &ddb.AttributeValueMemberS{Value: "user02@corp.example"}, "no": &ddb.AttributeValueMemberN{Value: "2"}}})
	if err != nil {
		t.Fatal(err)
	}
	var streamed map[string]map[string]any
	waitFor(t, 60*time.Second, func() bool {
		c, err1 := scanAll(s.test, "customers")
		o, err2 := scanAll(s.test, "orders")
		if err1 != nil || err2 != nil || len(c) != 43 || len(o) != 39 {
			return false
		}
		for _, x := range c {
			if p, ok := x["profile"].(map[string]any); ok && p["tier"] == "silver" {
				streamed = c
				return true
			}
		}
		return false
	})
	// The new customer's key and user01's updated nested email are the same
	// production value: one replacement.
	var silver, newKey string
	for id, x := range streamed {
		p, _ := x["profile"].(map[string]any)
		if p["tier"] == "silver" {
			silver = fmt.Sprint(p["email"])
		}
		if _, loaded := cust[id]; !loaded {
			newKey = id
		}
	}
	if silver == "" || silver != newKey {
		t.Fatalf("updated nested email %q vs streamed key %q: want one replacement", silver, newKey)
	}

	// status beside the running sync: per-shard position, the age of unread records.
	code, out := s.cli(ctx, "status", "--json")
	if code != 0 || !strings.Contains(out, `"streaming"`) || !strings.Contains(out, "customers: ") || !strings.Contains(out, "shard") ||
		!strings.Contains(out, "being read") {
		t.Fatalf("status exit %d:\n%s", code, out)
	}
	t.Logf("status:\n%s", out)
	// verify beside the running sync (mappings and checkpoints in DynamoDB).
	if code, out := s.cli(ctx, "verify"); code != 0 {
		t.Fatalf("verify during sync exit %d:\n%s", code, out)
	}
	stop()
	wg.Wait()
	if syncCode != 0 {
		t.Fatalf("sync exit %d:\n%s", syncCode, syncOut)
	}

	// Tampering is found; reset clears, reloads and repairs it.
	_, err = s.test.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("customers"),
		Item: map[string]ddb.AttributeValue{"id": &ddb.AttributeValueMemberS{Value: "stray"}}})
	if err != nil {
		t.Fatal(err)
	}
	if code, out := s.cli(ctx, "verify"); code != 1 || !strings.Contains(out, "customers: DIFFERENT") {
		t.Fatalf("verify after tampering exit %d:\n%s", code, out)
	}
	if code, out := s.cli(ctx, "reset", "--yes"); code != 0 {
		t.Fatalf("reset exit %d:\n%s", code, out)
	}
	if code, out := s.cli(ctx, "verify"); code != 0 {
		t.Fatalf("verify after reset exit %d:\n%s", code, out)
	}

	// Leak check: no canary in the target, the mapping or checkpoint tables,
	// or anything the commands printed.
	var hay bytes.Buffer
	hay.WriteString(syncOut + out)
	stateClient := ddbClient(t, strings.Replace(os.Getenv("DDB_MAPS"), "understudy-maps", "", 1))
	for _, tc := range []struct {
		c     *dynamodb.Client
		table string
	}{{s.test, "customers"}, {s.test, "orders"}, {stateClient, "understudy-maps"}, {stateClient, "understudy-state"}} {
		items, err := scanAll(tc.c, tc.table)
		if err != nil {
			t.Fatalf("scan %s: %v", tc.table, err)
		}
		b, _ := json.Marshal(items)
		hay.Write(b)
	}
	for _, c := range s.canaries {
		if bytes.Contains(hay.Bytes(), []byte(c)) {
			t.Fatalf("canary %q leaked into the target, a store or output", c)
		}
	}
}

// TestDynamoDBAndPostgresShareReplacements loads a DynamoDB pipeline and a
// Postgres pipeline of one config: the same production email, a DynamoDB key
// attribute in one and a Postgres column in the other, in the same domain, gets
// the same replacement.
func TestDynamoDBAndPostgresShareReplacements(t *testing.T) {
	s := newShop(t)
	pg := testenv.Postgres(t)
	prod, test := pg.NewDatabase(t), pg.NewDatabase(t)
	pg.Exec(t, prod, `CREATE TABLE people (id int PRIMARY KEY, email text);
		INSERT INTO people VALUES (1, 'user07@corp.example');`)
	t.Setenv("PG_PROD", prod)
	t.Setenv("PG_TEST", test)
	cfg, err := os.ReadFile(s.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, []byte(`  - name: people
    source: ${PG_PROD}
    target: ${PG_TEST}
    tables: [public.people]
    rules:
      public.people:
        email: {replace: email, domain: email}
`)...)
	if err := os.WriteFile(s.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if code, out := s.cli(ctx, "load"); code != 0 {
		t.Fatalf("load exit %d:\n%s", code, out)
	}
	pgEmail := query(t, test, `SELECT email FROM people WHERE id = 1`)[0][0].(string)
	orders, err := scanAll(s.test, "orders")
	if err != nil {
		t.Fatal(err)
	}
	// order no 7 belongs to user07@corp.example.
	var ddbEmail string
	for _, o := range orders {
		if o["no"] == "N:7" {
			ddbEmail = o["customer"].(string)
		}
	}
	if pgEmail == "user07@corp.example" || pgEmail != ddbEmail {
		t.Fatalf("Postgres column → %q, DynamoDB key attribute → %q: want one replacement", pgEmail, ddbEmail)
	}
}
