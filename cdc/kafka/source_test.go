package kafka_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/cdc/kafka"
	"github.com/understudy/understudy/cdc/kafka/kafkatest"
)

func TestParseURL(t *testing.T) {
	u, err := kafka.ParseURL("kafka://al%40ice:p%3Ass@b1:9093,b2/orders,clicks?sasl=scram-sha-512&tls=true&tls_insecure=true")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(u.Brokers, ",") != "b1:9093,b2:9092" || strings.Join(u.Topics, ",") != "orders,clicks" ||
		u.User != "al@ice" || u.Password != "p:ss" {
		t.Fatalf("%+v", u)
	}
	cfg, err := u.Config()
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Net.SASL.Enable || !cfg.Net.TLS.Enable || cfg.Net.SASL.SCRAMClientGeneratorFunc == nil {
		t.Fatalf("sasl/tls not configured: %+v", cfg.Net)
	}
	for _, bad := range []string{"kafka:///t", "kafka://u:p@b/t", "kafka://b?sasl=gssapi&x", "kafka://b?version=0.10.0"} {
		u, err := kafka.ParseURL(bad)
		if err == nil {
			_, err = u.Config()
		}
		if err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	a, _ := kafka.ParseURL("kafka://localhost:9092,b")
	b, _ := kafka.ParseURL("kafka://127.0.0.1:9092")
	if !kafka.SameCluster(a, b) {
		t.Error("localhost and 127.0.0.1 on one port are the same broker")
	}
}

func TestPosition(t *testing.T) {
	p := kafka.Position{"a": {0: 5, 1: 7}, "b": {0: 1}}
	q, err := kafka.ParsePosition(p.Encode())
	if err != nil || q.String() != "a[0]=5 a[1]=7 b[0]=1" {
		t.Fatalf("%v %v", q, err)
	}
	if string(p.Encode()) != string(q.Encode()) {
		t.Fatal("encoding is not canonical")
	}
}

func open(t *testing.T, url string, tables ...string) *kafka.Source {
	t.Helper()
	src, err := kafka.Open(context.Background(), cdc.SourceOptions{URL: url, Pipeline: "p", Tables: tables})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	return src.(*kafka.Source)
}

// collect streams from pos until the commit position reads want and returns
// the changes with that position.
func collect(t *testing.T, src *kafka.Source, pos cdc.Position, want string) ([]cdc.Change, cdc.Position, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := make(chan cdc.Batch)
	errc := make(chan error, 1)
	go func() { errc <- src.Stream(ctx, pos, out) }()
	var got []cdc.Change
	var commit cdc.Position
	for {
		p, _ := kafka.ParsePosition(commit)
		if p.String() == want {
			break
		}
		select {
		case b := <-out:
			got = append(got, b.Changes...)
			commit = b.Commit
		case err := <-errc:
			return got, commit, err
		}
	}
	cancel()
	<-errc
	return got, commit, nil
}

func TestStreamAckAndNonJSON(t *testing.T) {
	_, brokers := kafkatest.Cluster(t, 2, "orders")
	kafkatest.Produce(t, brokers,
		kafkatest.Message{Topic: "orders", Partition: 0, Key: []byte("k1"), Value: []byte(`{"email":"a@x.io"}`), Headers: map[string]string{"trace": "t1"}},
		kafkatest.Message{Topic: "orders", Partition: 1, Key: []byte("k2"), Value: []byte(`not json`)},
		kafkatest.Message{Topic: "orders", Partition: 0, Key: nil, Value: nil},
	)
	ctx := context.Background()

	// fail (default): the stream stops at the bad message, naming where it is.
	src := open(t, "kafka://"+brokers+"/orders")
	tables, err := src.Open(ctx)
	if err != nil || len(tables) != 1 || tables[0].Name != "orders" || kafka.ParsePartitionsType(tables[0].Columns[3].Type) != 2 {
		t.Fatalf("Open: %v %+v", err, tables)
	}
	snap, err := src.BeginSnapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := snap.Position()
	if _, _, err := collect(t, src, start, "never"); err == nil || !strings.Contains(err.Error(), "orders[1] offset 0: value is not JSON") {
		t.Fatalf("non_json=fail: %v", err)
	}

	// drop: the message is skipped and counted, its offset still covered.
	src = open(t, "kafka://"+brokers+"?non_json=drop", "orders")
	if _, err := src.Open(ctx); err != nil {
		t.Fatal(err)
	}
	got, commit, err := collect(t, src, start, "orders[0]=2 orders[1]=1")
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := src.NonJSON(); d != 1 {
		t.Fatalf("dropped = %d", d)
	}
	if len(got) != 2 {
		t.Fatalf("got %d changes", len(got))
	}
	first := got[0]
	if got[1].Key["key"] != nil || got[1].After["value"] != nil {
		t.Fatalf("tombstone: %+v", got[1])
	}
	if first.Table != "orders" || first.Key["key"] != "k1" || string(first.After["value"].(cdc.JSON)) != `{"email":"a@x.io"}` ||
		string(first.After["headers"].(cdc.JSON)) != `[{"key":"trace","value":"t1"}]` || first.After["partition"] != int64(0) {
		t.Fatalf("change: %+v", first)
	}
	if p, _ := kafka.ParsePosition(commit); p.String() != "orders[0]=2 orders[1]=1" {
		t.Fatalf("commit = %s", p)
	}

	// pass: the value comes through as bytes.
	src2 := open(t, "kafka://"+brokers+"/orders?non_json=pass")
	if _, err := src2.Open(ctx); err != nil {
		t.Fatal(err)
	}
	got, _, err = collect(t, src2, start, "orders[0]=2 orders[1]=1")
	if err != nil {
		t.Fatal(err)
	}
	var passed bool
	for _, c := range got {
		if b, ok := c.After["value"].([]byte); ok && string(b) == "not json" {
			passed = true
		}
	}
	if _, p := src2.NonJSON(); !passed || p != 1 {
		t.Fatalf("pass: %v %d", passed, p)
	}

	// Ack commits the group's offsets; a fresh pipeline starts from them.
	if err := src.Ack(ctx, commit); err != nil {
		t.Fatal(err)
	}
	// Commits run in the background; Close commits the last acknowledged position.
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	src3 := open(t, "kafka://"+brokers+"/orders?non_json=drop")
	if _, err := src3.Open(ctx); err != nil {
		t.Fatal(err)
	}
	snap, err = src3.BeginSnapshot(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := kafka.ParsePosition(snap.Position()); p.String() != "orders[0]=2 orders[1]=1" {
		t.Fatalf("start after ack = %s", p)
	}
	// start=latest for a group without offsets.
	src4 := open(t, "kafka://"+brokers+"/orders?group=other&start=latest")
	if _, err := src4.Open(ctx); err != nil {
		t.Fatal(err)
	}
	snap, _ = src4.BeginSnapshot(ctx, nil)
	if p, _ := kafka.ParsePosition(snap.Position()); p.String() != "orders[0]=2 orders[1]=1" {
		t.Fatalf("start=latest = %s", p)
	}
	if err := src3.Reset(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesMissingTopic(t *testing.T) {
	_, brokers := kafkatest.Cluster(t, 1, "orders")
	src := open(t, "kafka://"+brokers+"/nope")
	_, err := src.Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "topic nope does not exist") {
		t.Fatal(err)
	}
	_ = errors.New
}
