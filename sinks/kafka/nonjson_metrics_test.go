package kafka_test

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/cdc/kafka/kafkatest"
	"github.com/understudy/understudy/config"
	"github.com/understudy/understudy/pipeline"
)

// The non-JSON policy's counter is on /metrics, per pipeline and policy, and moves
// with every value dropped or passed.
func TestNonJSONCounterOnMetrics(t *testing.T) {
	_, src := kafkatest.Cluster(t, 1, "orders", "clicks")
	_, dst := kafkatest.Cluster(t, 0)
	kafkatest.Produce(t, src,
		kafkatest.Message{Topic: "orders", Key: []byte("1"), Value: []byte(`{"n":1}`)},
		kafkatest.Message{Topic: "orders", Key: []byte("2"), Value: []byte("not json")},
		kafkatest.Message{Topic: "orders", Key: []byte("3"), Value: []byte("<xml/>")},
		kafkatest.Message{Topic: "orders", Key: []byte("4"), Value: []byte(`{"n":4}`)},
		kafkatest.Message{Topic: "clicks", Key: []byte("1"), Value: []byte("plain text")},
		kafkatest.Message{Topic: "clicks", Key: []byte("2"), Value: []byte(`{"n":2}`)},
	)
	dir := t.TempDir()
	path := filepath.Join(dir, "understudy.yaml")
	os.WriteFile(path, []byte(`
secret: ${UNDERSTUDY_SECRET}
metrics: off
pipelines:
  - name: orders
    source: kafka://`+src+`/orders?non_json=drop
    target: kafka://`+dst+`
    tables: [orders]
  - name: clicks
    source: kafka://`+src+`/clicks?non_json=pass
    target: kafka://`+dst+`
    tables: [clicks]
    rules:
      clicks:
        value:
          json:
            $.n: hash
`), 0o600)
	t.Setenv("UNDERSTUDY_SECRET", secret)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dep, err := pipeline.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dep.Close()
	srv := httptest.NewServer(dep.Metrics.Handler())
	defer srv.Close()
	scrape := func() string {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	var done []chan error
	for _, name := range []string{"orders", "clicks"} {
		p, err := dep.Pipeline(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		p.Options = pipeline.Options{FlushInterval: 5 * time.Millisecond}
		ch := make(chan error, 1)
		go func() { ch <- p.Sync(ctx) }()
		done = append(done, ch)
	}
	if m := scrape(); !strings.Contains(m, `understudy_non_json_messages_total{pipeline="orders",policy="drop"}`) {
		t.Fatalf("no non-JSON series before any message was counted:\n%s", m)
	}
	waitCount(t, dst, "orders", 2)
	waitCount(t, dst, "clicks", 2)
	m := scrape()
	for _, want := range []string{
		`understudy_non_json_messages_total{pipeline="orders",policy="drop"} 2`,
		`understudy_non_json_messages_total{pipeline="orders",policy="pass"} 0`,
		`understudy_non_json_messages_total{pipeline="clicks",policy="pass"} 1`,
		`understudy_non_json_messages_total{pipeline="clicks",policy="drop"} 0`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(m, "not json") || strings.Contains(m, "plain text") {
		t.Error("a message value reached /metrics")
	}
	cancel()
	for _, ch := range done {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
}
