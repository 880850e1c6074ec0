package dynamodb_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/understudy/understudy/mapping"
	"github.com/understudy/understudy/mapping/dynamodb"
	"github.com/understudy/understudy/mapping/mappingtest"
	"github.com/understudy/understudy/testenv"
)

func TestMain(m *testing.M) {
	mappingtest.RunChild()
	testenv.Main(m)
}

var tables atomic.Int64

// freshURL returns the URL of a table no test used yet.
func freshURL(t *testing.T) string {
	srv := testenv.DynamoDB(t)
	return fmt.Sprintf("dynamodb://us_map_%d_%d?endpoint=%s", time.Now().UnixNano()%1e9, tables.Add(1), srv.Endpoint)
}

func open(t *testing.T, url string) *dynamodb.Store {
	t.Helper()
	s, err := dynamodb.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The injectivity scenario maps Values distinct values. DynamoDB Local (3.3.0,
// in memory) on the 2-core test machine created 800-1,150 new mappings/s
// (20,000 in 17.3 s; 10,000 in 12.4 s under load from other jobs: a consistent BatchGetItem, then two conditional puts per
// value, 32 concurrent), so the suite's default 1,000,000 (100,000 with -short)
// would take 15 minutes (1.5 with -short): the contract is checked on 10,000
// here; the code path is the same at any count.
const manyValues = 10_000

func TestStore(t *testing.T) {
	mappingtest.Run(t, func(t *testing.T) mapping.Store { return open(t, freshURL(t)) },
		mappingtest.Options{SharedURL: freshURL, Values: manyValues})
}

func TestOpenByURL(t *testing.T) {
	s, err := mapping.Open(context.Background(), freshURL(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*dynamodb.Store); !ok {
		t.Fatalf("Open(dynamodb://…) = %T", s)
	}
	_ = s.Close()
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"dynamodb://", "dynamodb://t?endpoint=nope", "dynamodb://t?bogus=1"} {
		if _, err := mapping.Open(context.Background(), u); err == nil {
			t.Errorf("Open(%q) succeeded", u)
		}
	}
}

// Lookups of more than 100 keys are split across BatchGetItem calls.
func TestLargeBatch(t *testing.T) {
	s := open(t, freshURL(t))
	defer s.Close()
	ns := mapping.PermanentNamespace()
	reqs := make([]mapping.Request, 450)
	for i := range reqs {
		reqs[i] = mapping.Request{NS: ns, Domain: "d", Key: mapping.Key{byte(i), byte(i >> 8)}, Candidates: []string{fmt.Sprint("c", i)}}
	}
	res, err := s.Resolve(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Lookup(context.Background(), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reqs {
		if !res[i].OK || !got[i].OK || got[i].Value != fmt.Sprint("c", i) {
			t.Fatalf("request %d: resolve %+v, lookup %+v", i, res[i], got[i])
		}
	}
}

// Namespaces and domains may contain '#' without mixing up items.
func TestOddNames(t *testing.T) {
	s := open(t, freshURL(t))
	defer s.Close()
	ctx := context.Background()
	a := mapping.Namespace{Scope: mapping.Run, Period: "a#b"}
	b := mapping.Namespace{Scope: mapping.Run, Period: "a"}
	reqs := []mapping.Request{
		{NS: a, Domain: "c", Key: mapping.Key{1}, Candidates: []string{"x"}},
		{NS: b, Domain: "b#c", Key: mapping.Key{1}, Candidates: []string{"y"}},
	}
	res, err := s.Resolve(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Value != "x" || res[1].Value != "y" {
		t.Fatalf("odd names collided: %+v", res)
	}
	if err := s.Purge(ctx, mapping.Run, "a"); err != nil {
		t.Fatal(err)
	}
	res, err = s.Lookup(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].OK || res[1].OK {
		t.Errorf("Purge(run, a) removed the wrong namespaces: %+v", res)
	}
}

// An unreachable endpoint fails Open with an error naming the table.
func TestUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := mapping.Open(ctx, "dynamodb://nowhere?endpoint=http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("Open of an unreachable endpoint: %v", err)
	}
}
