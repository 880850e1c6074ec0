package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/understudy/understudy/cdc/kafka"
	"github.com/understudy/understudy/cdc/kafka/kafkatest"
	_ "github.com/understudy/understudy/cdc/postgres"
	_ "github.com/understudy/understudy/checkpoint/file"
	"github.com/understudy/understudy/config"
	_ "github.com/understudy/understudy/mapping/file"
	"github.com/understudy/understudy/pipeline"
	skafka "github.com/understudy/understudy/sinks/kafka"
	_ "github.com/understudy/understudy/sinks/postgres"
)

const secret = "kafka-e2e-secret-0123456789"

// deployment is one understudy process, in-process: the config file in dir.
type deployment struct {
	t       *testing.T
	path    string
	options pipeline.Options
}

func newDeployment(t *testing.T, yaml string) *deployment {
	dir := t.TempDir()
	path := filepath.Join(dir, "understudy.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return &deployment{t: t, path: path}
}

// start runs `sync` of pipeline name until the returned stop is called; stop
// returns the pipeline's error.
func (d *deployment) start(name string) (stop func() error) {
	t := d.t
	t.Helper()
	t.Setenv("UNDERSTUDY_SECRET", secret)
	cfg, err := config.Load(d.path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dep, err := pipeline.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := dep.Pipeline(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	p.Options = d.options
	done := make(chan error, 1)
	go func() { done <- p.Sync(ctx) }()
	return func() error {
		cancel()
		err := <-done
		p.Close()
		dep.Close()
		return err
	}
}

func waitCount(t *testing.T, brokers, topic string, n int64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for kafkatest.Count(t, brokers, topic) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d messages, want %d", topic, kafkatest.Count(t, brokers, topic), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type customerEvent struct {
	Email string `json:"email"`
	Name  string `json:"name"`
	N     int    `json:"n"`
}

func produceCustomers(t *testing.T, brokers string, from, to int) {
	var msgs []kafkatest.Message
	for i := from; i < to; i++ {
		c := i % 10
		v, _ := json.Marshal(customerEvent{Email: fmt.Sprintf("user%d@prod.example", c), Name: fmt.Sprintf("Real Person%d", c), N: i})
		msgs = append(msgs, kafkatest.Message{Topic: "customers", Partition: int32(c % 3),
			Key: []byte(fmt.Sprintf("cust-%d", c)), Value: v, Headers: map[string]string{"trace": fmt.Sprint(i)}})
	}
	kafkatest.Produce(t, brokers, msgs...)
}

// Mirror a topic with anonymized JSON paths and keys: consistent replacements,
// same partitions, headers kept, per-key order, and a stop/restart in the middle
// of the stream that loses nothing.
func TestMirrorAnonymizesAndResumes(t *testing.T) {
	_, src := kafkatest.Cluster(t, 3, "customers")
	_, dst := kafkatest.Cluster(t, 0)
	d := newDeployment(t, `
secret: ${UNDERSTUDY_SECRET}
metrics: off
pipelines:
  - name: mirror
    source: kafka://`+src+`/customers
    target: kafka://`+dst+`
    tables: [customers]
    rules:
      customers:
        key: {replace: format, domain: customer_key}
        value:
          json:
            $.email: {replace: email, domain: email}
            $.name: {replace: full_name}
`)
	d.options = pipeline.Options{BatchSize: 25, FlushInterval: 5 * time.Millisecond}
	produceCustomers(t, src, 0, 100)
	stop := d.start("mirror")
	waitCount(t, dst, "customers", 30)
	// Stop mid-stream (more is produced meanwhile), then a new process resumes.
	produceCustomers(t, src, 100, 200)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stop = d.start("mirror")
	produceCustomers(t, src, 200, 300)
	waitCount(t, dst, "customers", 300)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	if kafkatest.Count(t, dst, skafka.MarkerTopic) != 0 || !topicExists(t, dst, skafka.MarkerTopic) {
		t.Error("the target cluster was not marked")
	}
	got := kafkatest.ReadAll(t, dst, "customers")
	seen := map[int]bool{}
	keyOf := map[int]string{}   // source customer → replaced key
	emailOf := map[int]string{} // source customer → replaced email
	lastN := map[string]int{}
	for _, m := range got {
		var ev customerEvent
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatalf("value %q: %v", m.Value, err)
		}
		c := ev.N % 10
		if strings.Contains(string(m.Value), "prod.example") || strings.Contains(string(m.Value), "Real Person") ||
			strings.HasPrefix(string(m.Key), "cust-") {
			t.Fatalf("production value leaked: key %q value %s", m.Key, m.Value)
		}
		if k, ok := keyOf[c]; ok && k != string(m.Key) {
			t.Fatalf("customer %d's key replaced as %q and %q", c, k, m.Key)
		}
		if e, ok := emailOf[c]; ok && e != ev.Email {
			t.Fatalf("customer %d's email replaced as %q and %q", c, e, ev.Email)
		}
		keyOf[c], emailOf[c] = string(m.Key), ev.Email
		if m.Partition != int32(c%3) {
			t.Fatalf("message %d went to partition %d, want the source's %d", ev.N, m.Partition, c%3)
		}
		if m.Headers["trace"] != fmt.Sprint(ev.N) {
			t.Fatalf("headers of %d: %v", ev.N, m.Headers)
		}
		if !seen[ev.N] { // at-least-once: a replay may repeat, never reorder new ones
			if last, ok := lastN[string(m.Key)]; ok && ev.N < last {
				t.Fatalf("key %q: message %d after %d", m.Key, ev.N, last)
			}
			lastN[string(m.Key)] = ev.N
		}
		seen[ev.N] = true
	}
	for i := range 300 {
		if !seen[i] {
			t.Fatalf("message %d was lost", i)
		}
	}
	if len(keyOf) != 10 {
		t.Fatalf("%d distinct replaced keys, want 10", len(keyOf))
	}
}

func topicExists(t *testing.T, brokers, topic string) bool {
	return slices.Contains(kafkatest.Topics(t, brokers), topic)
}

// A cluster with topics and no marker is not written to.
func TestMirrorRefusesUnmarkedCluster(t *testing.T) {
	_, src := kafkatest.Cluster(t, 1, "customers")
	_, dst := kafkatest.Cluster(t, 1, "payments")
	d := newDeployment(t, `
secret: ${UNDERSTUDY_SECRET}
metrics: off
pipelines:
  - name: mirror
    source: kafka://`+src+`/customers
    target: kafka://`+dst+`
    tables: [customers]
`)
	stop := d.start("mirror")
	err := stop()
	if err == nil || !strings.Contains(err.Error(), "not a marked understudy replica") {
		t.Fatalf("sync into an unmarked cluster: %v", err)
	}
	if topicExists(t, dst, "customers") {
		t.Fatal("a topic was created on an unmarked cluster")
	}
}
