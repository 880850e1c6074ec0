package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/understudy/understudy/cdc/kafka/kafkatest"
)

// TestKafkaMirrorKillMidStream runs `understudy sync` of a topic mirror while a
// producer writes to production continuously, SIGKILLs it twice mid-stream,
// restarts it each time, and checks the test cluster: every production message
// arrived (duplicates allowed — at-least-once — none missing), each key's
// messages in order on its partition, keys and emails anonymized consistently.
func TestKafkaMirrorKillMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: runs the built binary")
	}
	const keys = 12
	_, src := kafkatest.Cluster(t, 3, "events")
	_, dst := kafkatest.Cluster(t, 0)
	dir := t.TempDir()
	e := &env{t: t, dir: dir, config: filepath.Join(dir, "understudy.yaml")}
	cfg := `secret: ${UNDERSTUDY_SECRET}
metrics: off
pipelines:
  - name: events
    source: kafka://` + src + `/events
    target: kafka://` + dst + `
    tables: [events]
    rules:
      events:
        key: {replace: format, domain: event_key}
        value:
          json:
            $.email: {replace: email, domain: email}
`
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	p := startEventProducer(t, src, keys)
	sync := e.start("sync")
	for kill := 1; kill <= 2; kill++ {
		at := kafkatest.Count(t, dst, "events") + 300
		waitFor(t, time.Minute, fmt.Sprintf("%d mirrored messages before kill %d", at, kill), sync, func() bool {
			return kafkatest.Count(t, dst, "events") >= at
		})
		sync.kill9(t)
		t.Logf("kill %d: %d produced, %d mirrored", kill, p.sent.Load(), kafkatest.Count(t, dst, "events"))
		sync = e.start("sync")
	}
	at := kafkatest.Count(t, dst, "events") + 300
	waitFor(t, time.Minute, "messages mirrored after the last restart", sync, func() bool {
		return kafkatest.Count(t, dst, "events") >= at
	})
	produced := p.stop(t)
	waitFor(t, time.Minute, "every produced message mirrored", sync, func() bool {
		return kafkatest.Count(t, dst, "events") >= produced
	})
	// Replays of a killed process's last batch can add duplicates, so the count
	// may exceed what was produced: wait for the mirror to be caught up by
	// content, not count.
	var got []kafkatest.Message
	waitFor(t, time.Minute, "every sequence number in the target", sync, func() bool {
		got = kafkatest.ReadAll(t, dst, "events")
		seen := map[int64]bool{}
		for _, m := range got {
			var ev producedEvent
			if json.Unmarshal(m.Value, &ev) == nil {
				seen[ev.Seq] = true
			}
		}
		return int64(len(seen)) == produced
	})
	sync.stop(t, 30*time.Second)

	keyOf := map[int]string{}
	emailOf := map[int]string{}
	seen := map[int64]bool{}
	last := map[int]int64{}
	dups := 0
	for _, m := range got {
		var ev producedEvent
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatalf("target message %s[%d]@%d is not the mirrored JSON: %v", "events", m.Partition, m.Offset, err)
		}
		if strings.Contains(ev.Email, "prod.example") || strings.HasPrefix(string(m.Key), "key-") {
			t.Fatalf("production value in the target: key %q email %q", m.Key, ev.Email)
		}
		if k, ok := keyOf[ev.K]; ok && k != string(m.Key) {
			t.Fatalf("key %d replaced as %q and %q", ev.K, k, m.Key)
		}
		if e, ok := emailOf[ev.K]; ok && e != ev.Email {
			t.Fatalf("email of key %d replaced as %q and %q", ev.K, e, ev.Email)
		}
		keyOf[ev.K], emailOf[ev.K] = string(m.Key), ev.Email
		if m.Partition != int32(ev.K%3) {
			t.Fatalf("message %d of key %d on partition %d, production's is %d", ev.Seq, ev.K, m.Partition, ev.K%3)
		}
		if seen[ev.Seq] {
			dups++
			continue
		}
		seen[ev.Seq] = true
		// Each key's first deliveries come in production order.
		if l, ok := last[ev.K]; ok && ev.Seq < l {
			t.Fatalf("key %d: message %d arrived after %d", ev.K, ev.Seq, l)
		}
		last[ev.K] = ev.Seq
	}
	for s := range produced {
		if !seen[s] {
			t.Fatalf("message %d of %d was lost", s, produced)
		}
	}
	if len(keyOf) != keys {
		t.Fatalf("%d distinct keys in the target, want %d", len(keyOf), keys)
	}
	t.Logf("%d produced, %d in the target (%d replayed after the kills)", produced, len(got), dups)
}

// producedEvent is a production message: Seq counts every message, K names its
// key ("key-K", partition K%3).
type producedEvent struct {
	Seq   int64  `json:"seq"`
	K     int    `json:"k"`
	Email string `json:"email"`
}

// eventProducer writes small batches to production until stopped.
type eventProducer struct {
	sent atomic.Int64
	done chan struct{}
	wg   sync.WaitGroup
	err  error
}

func startEventProducer(t *testing.T, brokers string, keys int) *eventProducer {
	prod, err := sarama.NewSyncProducer(strings.Split(brokers, ","), kafkatest.Config())
	if err != nil {
		t.Fatal(err)
	}
	p := &eventProducer{done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer prod.Close()
		var seq int64
		for {
			select {
			case <-p.done:
				return
			default:
			}
			msgs := make([]*sarama.ProducerMessage, 0, 10)
			for range 10 {
				k := int(seq % int64(keys))
				v, _ := json.Marshal(producedEvent{Seq: seq, K: k, Email: fmt.Sprintf("person%d@prod.example", k)})
				msgs = append(msgs, &sarama.ProducerMessage{Topic: "events", Partition: int32(k % 3),
					Key: sarama.StringEncoder(fmt.Sprintf("key-%d", k)), Value: sarama.ByteEncoder(v)})
				seq++
			}
			if err := prod.SendMessages(msgs); err != nil {
				p.err = err
				return
			}
			p.sent.Store(seq)
			// Pace production (~2000 messages a second) so that the kills land
			// mid-stream: load shaping, not synchronization.
			time.Sleep(5 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop ends production and returns how many messages were produced.
func (p *eventProducer) stop(t *testing.T) int64 {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	p.wg.Wait()
	if p.err != nil {
		t.Fatalf("producer: %v", p.err)
	}
	return p.sent.Load()
}
