// Command kafkabench compares understudy's topic mirror (2 anonymized JSON paths)
// with a plain sarama consume→produce copy of the same topic, side by side in one
// run, against in-process kfake brokers (see docs/kafka.md for results).
//
// Both copies use the same producer guarantees (idempotent, acks=all, one request
// in flight) and read from the same source topic; each writes to its own empty
// cluster. understudy runs the real pipeline (config → deployment → Sync) in
// process, with the mapping store in memory.
//
//	go run ./bench/kafkabench -messages 100000
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"

	_ "github.com/understudy/understudy/cdc/kafka"
	_ "github.com/understudy/understudy/checkpoint/memory"
	"github.com/understudy/understudy/config"
	_ "github.com/understudy/understudy/mapping/memory"
	"github.com/understudy/understudy/pipeline"
	_ "github.com/understudy/understudy/sinks/kafka"
)

const topic = "events"

func main() {
	n := flag.Int("messages", 100000, "messages in the source topic")
	parts := flag.Int("partitions", 3, "source partitions")
	rounds := flag.Int("rounds", 2, "alternating rounds of each copy")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the understudy rounds here")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	src := cluster(kfake.SeedTopics(int32(*parts), topic))
	fill(src, *n)
	fmt.Printf("source: %d messages, %d partitions, ~%d bytes each\n", *n, *parts, len(value(0)))
	var plain, mirror []float64
	for r := range *rounds {
		d := plainCopy(src, cluster(), *n)
		plain = append(plain, float64(*n)/d.Seconds())
		m := mirrorCopy(src, cluster(), *n, r)
		mirror = append(mirror, float64(*n)/m.Seconds())
		fmt.Printf("round %d: plain sarama copy %v (%.0f msg/s), understudy mirror %v (%.0f msg/s)\n",
			r+1, d.Round(time.Millisecond), plain[r], m.Round(time.Millisecond), mirror[r])
	}
	bp, bm := best(plain), best(mirror)
	fmt.Printf("best: plain %.0f msg/s, understudy %.0f msg/s, ratio %.2f (target ≥ 0.70)\n", bp, bm, bm/bp)
}

func best(xs []float64) float64 {
	b := 0.0
	for _, x := range xs {
		b = max(b, x)
	}
	return b
}

func cluster(opts ...kfake.Opt) string {
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		log.Fatal(err)
	}
	return strings.Join(c.ListenAddrs(), ",")
}

func value(i int) []byte {
	c := i % 5000
	v, _ := json.Marshal(map[string]any{
		"email": fmt.Sprintf("customer%d@prod.example", c), "name": fmt.Sprintf("Real Person %d", c),
		"order_id": i, "amount": fmt.Sprintf("%d.%02d", i%1000, i%100), "currency": "EUR",
		"items":      []map[string]any{{"sku": fmt.Sprintf("SKU-%05d", i%977), "qty": 1 + i%3}},
		"created_at": "2026-05-01T09:30:00Z",
	})
	return v
}

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_0_0_0
	cfg.Metadata.AllowAutoTopicCreation = false
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Flush.Bytes = 1 << 20
	cfg.Producer.Flush.Frequency = time.Millisecond
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	return cfg
}

func fill(brokers string, n int) {
	p, err := sarama.NewSyncProducer(strings.Split(brokers, ","), saramaConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	client, _ := sarama.NewClient(strings.Split(brokers, ","), saramaConfig())
	ps, _ := client.Partitions(topic)
	client.Close()
	for i := 0; i < n; i += 5000 {
		var msgs []*sarama.ProducerMessage
		for j := i; j < min(i+5000, n); j++ {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: int32(j % len(ps)),
				Key: sarama.StringEncoder(fmt.Sprintf("cust-%d", j%5000)), Value: sarama.ByteEncoder(value(j))})
		}
		if err := p.SendMessages(msgs); err != nil {
			log.Fatal(err)
		}
	}
}

// plainCopy copies topic with a sarama consumer and a sync producer, in batches of
// up to 2000, the way a team would without understudy.
func plainCopy(src, dst string, n int) time.Duration {
	admin, err := sarama.NewClusterAdmin(strings.Split(dst, ","), saramaConfig())
	if err != nil {
		log.Fatal(err)
	}
	client, _ := sarama.NewClient(strings.Split(src, ","), saramaConfig())
	ps, _ := client.Partitions(topic)
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: int32(len(ps)), ReplicationFactor: 1}, false); err != nil {
		log.Fatal(err)
	}
	admin.Close()
	start := time.Now()
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		log.Fatal(err)
	}
	prod, err := sarama.NewSyncProducer(strings.Split(dst, ","), saramaConfig())
	if err != nil {
		log.Fatal(err)
	}
	msgs := make(chan *sarama.ConsumerMessage, 2000)
	var wg sync.WaitGroup
	for _, p := range ps {
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			log.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range pc.Messages() {
				msgs <- m
			}
		}()
	}
	for copied := 0; copied < n; {
		batch := []*sarama.ProducerMessage{toProducer(<-msgs)}
	more:
		for len(batch) < 2000 {
			select {
			case m := <-msgs:
				batch = append(batch, toProducer(m))
			default:
				break more
			}
		}
		if err := prod.SendMessages(batch); err != nil {
			log.Fatal(err)
		}
		copied += len(batch)
	}
	d := time.Since(start)
	prod.Close()
	cons.Close()
	client.Close()
	return d
}

func toProducer(m *sarama.ConsumerMessage) *sarama.ProducerMessage {
	pm := &sarama.ProducerMessage{Topic: m.Topic, Partition: m.Partition, Key: sarama.ByteEncoder(m.Key), Value: sarama.ByteEncoder(m.Value)}
	for _, h := range m.Headers {
		pm.Headers = append(pm.Headers, *h)
	}
	return pm
}

// mirrorCopy runs the understudy mirror pipeline until dst has n messages.
func mirrorCopy(src, dst string, n, round int) time.Duration {
	dir, _ := os.MkdirTemp("", "kafkabench")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "understudy.yaml")
	yaml := fmt.Sprintf(`
secret: ${UNDERSTUDY_SECRET}
mappings: memory
checkpoints: memory
metrics: off
pipelines:
  - name: mirror
    source: kafka://%s/%s?group=bench-%d
    target: kafka://%s
    tables: [%s]
    rules:
      %s:
        value:
          json:
            $.email: {replace: email, domain: email}
            $.name: {replace: full_name}
`, src, topic, round, dst, topic, topic)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		log.Fatal(err)
	}
	if os.Getenv("UNDERSTUDY_SECRET") == "" {
		os.Setenv("UNDERSTUDY_SECRET", "kafkabench-secret-0123456789")
	}
	cfg, err := config.Load(path)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	dep, err := pipeline.Open(ctx, cfg, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer dep.Close()
	p, err := dep.Pipeline(ctx, "mirror")
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	done := make(chan error, 1)
	go func() { done <- p.Sync(ctx) }()
	client, err := sarama.NewClient(strings.Split(dst, ","), saramaConfig())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	var first time.Time
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			log.Fatalf("mirror stopped: %v", err)
		case <-tick.C:
		}
		var total int64
		client.RefreshMetadata(topic)
		ps, _ := client.Partitions(topic)
		for _, part := range ps {
			off, _ := client.GetOffset(topic, part, sarama.OffsetNewest)
			total += off
		}
		if total > 0 && first.IsZero() {
			first = time.Now()
			fmt.Printf("  understudy: first message after %v (start-up)\n", first.Sub(start).Round(time.Millisecond))
		}
		if total >= int64(n) {
			d := time.Since(start)
			cancel()
			<-done
			return d
		}
	}
}
