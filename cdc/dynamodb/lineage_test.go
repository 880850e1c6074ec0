package dynamodb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"

	"github.com/understudy/understudy/cdc"
)

// These tests serve the real SDK client from recorded DynamoDB Streams
// responses (testdata/*.json), because DynamoDB Local has one shard per table and
// never splits, trims or throttles.

type exchange struct {
	Action   string          `json:"action"`
	Request  json.RawMessage `json:"request"`
	Absent   []string        `json:"absent"`
	Repeat   bool            `json:"repeat"`
	Status   int             `json:"status"`
	Response json.RawMessage `json:"response"`
	used     bool
}

type fixture struct {
	Stream    string      `json:"stream"`
	Shard     string      `json:"shard"`
	Exchanges []*exchange `json:"exchanges"`

	mu         sync.Mutex
	unexpected []string
	calls      []string // action + request, in order
}

func loadFixture(t *testing.T, name string) *fixture {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// subset reports whether every field of want has the same JSON value in got.
func subset(want, got map[string]any) bool {
	for k, w := range want {
		wb, _ := json.Marshal(w)
		gb, _ := json.Marshal(got[k])
		if string(wb) != string(gb) {
			return false
		}
	}
	return true
}

func (f *fixture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	action := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "DynamoDBStreams_20120810.")
	body, _ := io.ReadAll(r.Body)
	var req map[string]any
	json.Unmarshal(body, &req)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, action+" "+string(body))
	for _, ex := range f.Exchanges {
		if ex.Action != action || (ex.used && !ex.Repeat) {
			continue
		}
		var want map[string]any
		json.Unmarshal(ex.Request, &want)
		if !subset(want, req) {
			continue
		}
		absent := true
		for _, a := range ex.Absent {
			if _, ok := req[a]; ok {
				absent = false
			}
		}
		if !absent {
			continue
		}
		ex.used = true
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		if ex.Status != 0 {
			w.WriteHeader(ex.Status)
		}
		w.Write(ex.Response)
		return
	}
	if len(body) > 0 { // an empty body is a request the client aborted on cancel
		f.unexpected = append(f.unexpected, action+" "+string(body))
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.WriteHeader(400)
	fmt.Fprintf(w, `{"__type":"com.amazonaws.dynamodb.v20120810#ValidationException","message":"no recorded response"}`)
}

// client returns a real DynamoDB Streams client talking to the fixture, with
// the SDK's own retries off so the reader's handling is what is tested.
func (f *fixture) client(t *testing.T) StreamsAPI {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return dynamodbstreams.New(dynamodbstreams.Options{
		Region: "eu-west-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		Retryer:     aws.NopRetryer{},
	})
}

func (f *fixture) check(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.unexpected) > 0 {
		t.Errorf("requests without a recorded response:\n%s", strings.Join(f.unexpected, "\n"))
	}
	for _, ex := range f.Exchanges {
		if !ex.used && !ex.Repeat {
			t.Errorf("recorded exchange never requested: %s %s", ex.Action, ex.Request)
		}
	}
}

var fast = Tuning{Poll: 2 * time.Millisecond, Discover: time.Hour, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}

func TestShardLineageSplitThrottleExpiredIterator(t *testing.T) {
	f := loadFixture(t, "split.json")
	pos := newPosition()
	r := newReader(f.client(t), pos, map[string]string{"orders": f.Stream}, fast)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := make(chan cdc.Batch)
	errc := make(chan error, 1)
	go func() { errc <- r.run(ctx, out) }()

	type seen struct {
		op    cdc.Op
		id    string
		email string
	}
	var got []seen
	var last cdc.Position
	for len(got) < 6 {
		select {
		case b := <-out:
			for _, ch := range b.Changes {
				s := seen{op: ch.Op, id: ch.Key["id"].(string)}
				if ch.After != nil {
					var doc struct{ Email string }
					json.Unmarshal(ch.After["profile"].(cdc.JSON), &doc)
					s.email = doc.Email
				}
				got = append(got, s)
			}
			last = b.Commit
		case err := <-errc:
			t.Fatalf("reader stopped: %v (changes so far %v)", err, got)
		case <-ctx.Done():
			t.Fatalf("only %d changes: %v", len(got), got)
		}
	}
	// O's changes, then P's, then the children's (whose order between siblings
	// is free): u1 ends at a3 after a, a2; u2 is deleted after its insert.
	want := []seen{{cdc.Insert, "u1", "a@corp.example"}, {cdc.Insert, "u2", "b@corp.example"},
		{cdc.Update, "u1", "a2@corp.example"}, {cdc.Delete, "u2", ""}}
	for i, w := range want {
		if got[i] != w {
			t.Fatalf("change %d = %v, want %v (parents before children); all: %v", i, got[i], w, got)
		}
	}
	children := map[seen]bool{got[4]: true, got[5]: true}
	if !children[seen{cdc.Update, "u1", "a3@corp.example"}] || !children[seen{cdc.Insert, "u3", "c@corp.example"}] {
		t.Fatalf("children's changes: %v", got[4:])
	}
	// The position: parents finished, each child at its last record.
	var p *Position
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		if p, err = ParsePosition(last); err != nil {
			t.Fatal(err)
		}
		s := p.Tables["orders"].Shards
		if s["shardId-00000001714550400000-2c2c2c2c"] != nil && s["shardId-00000001714550400000-2c2c2c2c"].Seq == "300000000000000000101" &&
			s["shardId-00000001714550400000-3d3d3d3d"] != nil && s["shardId-00000001714550400000-3d3d3d3d"].Seq == "400000000000000000101" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("final position %s", p)
		}
		select {
		case b := <-out:
			last = b.Commit
		case <-time.After(100 * time.Millisecond):
		}
	}
	s := p.Tables["orders"].Shards
	if !s["shardId-00000001714521600000-0a0a0a0a"].Done || !s["shardId-00000001714536000000-1b1b1b1b"].Done {
		t.Fatalf("parents not finished in %s", p)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("run after cancel: %v", err)
	}
	f.check(t)
}

func TestTrimmedHorizonNamesReset(t *testing.T) {
	f := loadFixture(t, "trimmed.json")
	pos := newPosition()
	pos.At = time.Now().Add(-2 * time.Hour)
	pos.table("orders", f.Stream).Shards[f.Shard] = &ShardPos{Seq: "500000000000000000123"}
	r := newReader(f.client(t), pos, map[string]string{"orders": f.Stream}, fast)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := r.run(ctx, make(chan cdc.Batch, 10))
	if !errors.Is(err, cdc.ErrPositionLost) || !strings.Contains(err.Error(), "understudy reset") || !strings.Contains(err.Error(), "orders") {
		t.Fatalf("run from a trimmed checkpoint: %v", err)
	}
	f.check(t)
}

func TestCheckpointOlderThanRetentionIsLost(t *testing.T) {
	f := loadFixture(t, "trimmed.json")
	pos := newPosition()
	pos.At = time.Now().Add(-25 * time.Hour)
	pos.table("orders", f.Stream).Shards[f.Shard] = &ShardPos{} // never started: would silently read from the trimmed horizon
	r := newReader(f.client(t), pos, map[string]string{"orders": f.Stream}, fast)
	err := r.run(context.Background(), make(chan cdc.Batch, 10))
	if !errors.Is(err, cdc.ErrPositionLost) || !strings.Contains(err.Error(), "24 h") {
		t.Fatalf("run from a 25 h old checkpoint: %v", err)
	}
}

func TestShardExpiredBeforeFinishedIsLost(t *testing.T) {
	f := loadFixture(t, "trimmed.json")
	pos := newPosition()
	pos.At = time.Now()
	// A shard the checkpoint was reading that the stream no longer lists.
	pos.table("orders", f.Stream).Shards["shardId-00000001714000000000-99999999"] = &ShardPos{Seq: "42"}
	r := newReader(f.client(t), pos, map[string]string{"orders": f.Stream}, fast)
	err := r.run(context.Background(), make(chan cdc.Batch, 10))
	if !errors.Is(err, cdc.ErrPositionLost) || !strings.Contains(err.Error(), "shardId-00000001714000000000-99999999") {
		t.Fatalf("run with an expired unfinished shard: %v", err)
	}
}

func TestStreamReplacedIsLost(t *testing.T) {
	pos := newPosition()
	pos.table("orders", "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2023-01-01T00:00:00.000")
	r := newReader(nil, pos, map[string]string{"orders": "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2024-05-01T00:00:00.000"}, fast)
	err := r.run(context.Background(), make(chan cdc.Batch))
	if !errors.Is(err, cdc.ErrPositionLost) || !strings.Contains(err.Error(), "stream changed") {
		t.Fatalf("run on a replaced stream: %v", err)
	}
}
