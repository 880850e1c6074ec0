// Command kafkabench compares understudy's topic mirror (2 anonymized JSON paths)
// with a plain sarama consume→produce copy of the same topic, side by side in one
// run, against in-process kfake brokers (results: docs/kafka-benchmarks.md).
//
// Both copies use the same producer guarantees (idempotent, acks=all, one request
// in flight) and read from the same source topic; each writes to its own empty
// cluster. understudy runs the real pipeline (config → deployment → Sync) in
// process, with the mapping store in memory.
//
// Both are timed alike: from before the first connection until the target has
// acknowledged every message (the plain copy's SendMessages returns; the mirror's
// sink Apply returns — no polling). "steady" is the rate between the first
// acknowledged batch and the one that reaches 90% of the messages: it leaves out
// start-up (connections, topic creation, and for understudy the first
// replacements of each customer's email and name) and the last partial batch
// (which understudy holds for its 100 ms flush interval), i.e. the throughput of
// a running copy.
//
//	go run ./bench/kafkabench -messages 100000 -rounds 3
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/understudy/understudy/cdc"
	_ "github.com/understudy/understudy/cdc/kafka"
	_ "github.com/understudy/understudy/checkpoint/memory"
	"github.com/understudy/understudy/config"
	"github.com/understudy/understudy/internal/gctune"
	_ "github.com/understudy/understudy/mapping/memory"
	"github.com/understudy/understudy/pipeline"
	"github.com/understudy/understudy/sinks"
	_ "github.com/understudy/understudy/sinks/kafka"
)

const topic = "events"

func main() {
	n := flag.Int("messages", 100000, "messages in the source topic")
	parts := flag.Int("partitions", 3, "source partitions")
	rounds := flag.Int("rounds", 3, "alternating rounds of each copy")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the last understudy round here")
	memprofile := flag.String("memprofile", "", "write allocation profiles of the last round here: .plain (before the plain copy), .before and .after (the mirror); compare with go tool pprof -base")
	flag.Parse()
	// The GC settings of the understudy binary; both sides of the comparison
	// run in this process under them.
	gctune.Apply()

	fmt.Printf("load average before: %s\n", loadavg())
	src, _ := cluster(kfake.SeedTopics(int32(*parts), topic))
	fill(src, *n)
	fmt.Printf("source: %d messages, %d partitions, ~%d bytes each\n", *n, *parts, len(value(0)))
	var plain, mirror []result
	for r := range *rounds {
		if *memprofile != "" && r == *rounds-1 {
			writeAllocs(*memprofile + ".plain")
		}
		c0 := cpuTime()
		dst, c := cluster()
		pr := plainCopy(src, dst, *n)
		pr.cpu = cpuTime() - c0
		plain = append(plain, pr)
		c.Close() // its copy of the topic would otherwise weigh on every later GC
		dst, c = cluster()
		if *profile != "" && r == *rounds-1 {
			f, err := os.Create(*profile)
			if err != nil {
				log.Fatal(err)
			}
			pprof.StartCPUProfile(f)
		}
		if *memprofile != "" && r == *rounds-1 {
			writeAllocs(*memprofile + ".before")
		}
		c0 = cpuTime()
		mr := mirrorCopy(src, dst, *n, r)
		mr.cpu = cpuTime() - c0
		if *memprofile != "" && r == *rounds-1 {
			writeAllocs(*memprofile + ".after")
		}
		if *profile != "" && r == *rounds-1 {
			pprof.StopCPUProfile()
		}
		mirror = append(mirror, mr)
		c.Close()
		fmt.Printf("round %d: plain sarama copy %v (%.0f msg/s, steady %.0f, CPU %.1f µs/msg), understudy mirror %v (%.0f msg/s, steady %.0f, CPU %.1f µs/msg)\n",
			r+1, pr.total.Round(time.Millisecond), pr.rate(), pr.steady(), pr.cpuPerMsg(),
			mr.total.Round(time.Millisecond), mr.rate(), mr.steady(), mr.cpuPerMsg())
	}
	bp, bm := best(plain, result.rate), best(mirror, result.rate)
	sp, sm := best(plain, result.steady), best(mirror, result.steady)
	fmt.Printf("best end to end: plain %.0f msg/s, understudy %.0f msg/s, ratio %.2f\n", bp, bm, bm/bp)
	fmt.Printf("best steady:     plain %.0f msg/s, understudy %.0f msg/s, ratio %.2f (target ≥ 0.70)\n", sp, sm, sm/sp)
	cp, cm := best(plain, func(r result) float64 { return -r.cpuPerMsg() }), best(mirror, func(r result) float64 { return -r.cpuPerMsg() })
	fmt.Printf("least CPU:       plain %.1f µs/msg, understudy %.1f µs/msg (whole process: brokers and clients), ratio %.2f\n", -cp, -cm, cp/cm)
	fmt.Printf("load average after: %s\n", loadavg())
}

func writeAllocs(path string) {
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		log.Fatal(err)
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// result is one copy's timing.
type result struct {
	n      int
	total  time.Duration // start → every message acknowledged by the target
	first  time.Duration // start → the first produced batch acknowledged
	firstN int           // messages in that batch
	// at90 is when the acknowledged batches reached 90% of n, and n90 how many
	// they were then: steady is the rate from first to at90.
	at90 time.Duration
	n90  int
	cpu  time.Duration // process CPU time during the copy (brokers included)
}

// acked records a batch of k messages acknowledged at d, done before it.
func (r *result) acked(d time.Duration, done, k int) {
	if done == 0 {
		r.first, r.firstN = d, k
	}
	if done < r.n*9/10 && done+k >= r.n*9/10 {
		r.at90, r.n90 = d, done+k
	}
	if done < r.n && done+k >= r.n {
		r.total = d
	}
}

func (r result) cpuPerMsg() float64 { return float64(r.cpu.Microseconds()) / float64(r.n) }

func (r result) rate() float64 { return float64(r.n) / r.total.Seconds() }

func (r result) steady() float64 {
	return float64(r.n90-r.firstN) / (r.at90 - r.first).Seconds()
}

func best(rs []result, f func(result) float64) float64 {
	b := math.Inf(-1)
	for _, r := range rs {
		b = max(b, f(r))
	}
	return b
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// cluster starts an in-process broker; the brokers share the process (and its
// GC) with both copies.
func cluster(opts ...kfake.Opt) (string, *kfake.Cluster) {
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		log.Fatal(err)
	}
	return strings.Join(c.ListenAddrs(), ","), c
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
func plainCopy(src, dst string, n int) result {
	start := time.Now()
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
	res := result{n: n}
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
		res.acked(time.Since(start), copied, len(batch))
		copied += len(batch)
	}
	prod.Close()
	cons.Close()
	client.Close()
	return res
}

func toProducer(m *sarama.ConsumerMessage) *sarama.ProducerMessage {
	pm := &sarama.ProducerMessage{Topic: m.Topic, Partition: m.Partition, Key: sarama.ByteEncoder(m.Key), Value: sarama.ByteEncoder(m.Value)}
	for _, h := range m.Headers {
		pm.Headers = append(pm.Headers, *h)
	}
	return pm
}

// mirrorCopy runs the understudy mirror pipeline until the target acknowledged n
// messages.
func mirrorCopy(src, dst string, n, round int) result {
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
	cs := &countingSink{Sink: p.Sink, start: start, n: n, res: result{n: n}, done: make(chan struct{})}
	p.Sink = cs
	errc := make(chan error, 1)
	go func() { errc <- p.Sync(ctx) }()
	select {
	case err := <-errc:
		log.Fatalf("mirror stopped: %v", err)
	case <-cs.done:
	}
	cancel()
	if err := <-errc; err != nil {
		log.Fatalf("mirror: %v", err)
	}
	return cs.res
}

// countingSink times the mirror's sink: Apply returns once the target has
// acknowledged every message of the batch.
type countingSink struct {
	sinks.Sink
	start  time.Time
	n      int
	copied atomic.Int64
	res    result
	done   chan struct{}
}

func (c *countingSink) Apply(ctx context.Context, changes []cdc.Change) error {
	if err := c.Sink.Apply(ctx, changes); err != nil {
		return err
	}
	before := int(c.copied.Add(int64(len(changes)))) - len(changes)
	c.res.acked(time.Since(c.start), before, len(changes))
	if before < c.n && before+len(changes) >= c.n {
		close(c.done)
	}
	return nil
}
