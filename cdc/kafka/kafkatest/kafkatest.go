// Package kafkatest starts in-process Kafka-protocol brokers (kfake) for tests and
// reads and writes topics with plain sarama, independently of the code under test.
package kafkatest

import (
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Cluster starts a one-broker kfake cluster with topics of partitions partitions
// each and stops it when the test ends. It returns the broker list.
func Cluster(t testing.TB, partitions int32, topics ...string) (*kfake.Cluster, string) {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(1)}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(partitions, topics...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, strings.Join(c.ListenAddrs(), ",")
}

// Config is a sarama config that works against kfake.
func Config() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_0_0_0
	cfg.Metadata.AllowAutoTopicCreation = false
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Consumer.Return.Errors = true
	return cfg
}

// Message is a message to produce or one read back.
type Message struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   map[string]string
}

// Produce writes msgs (to their Partition) and waits for the acknowledgements.
func Produce(t testing.TB, brokers string, msgs ...Message) {
	t.Helper()
	p, err := sarama.NewSyncProducer(strings.Split(brokers, ","), Config())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pm := make([]*sarama.ProducerMessage, len(msgs))
	for i, m := range msgs {
		pm[i] = &sarama.ProducerMessage{Topic: m.Topic, Partition: m.Partition}
		if m.Key != nil {
			pm[i].Key = sarama.ByteEncoder(m.Key)
		}
		if m.Value != nil {
			pm[i].Value = sarama.ByteEncoder(m.Value)
		}
		for k, v := range m.Headers {
			pm[i].Headers = append(pm[i].Headers, sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
		}
	}
	if err := p.SendMessages(pm); err != nil {
		t.Fatal(err)
	}
}

// ReadAll returns every message of topic currently on the cluster, per partition
// in offset order (partition 0 first).
func ReadAll(t testing.TB, brokers, topic string) []Message {
	t.Helper()
	client, err := sarama.NewClient(strings.Split(brokers, ","), Config())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var out []Message
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if end == 0 {
			continue
		}
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		timeout := time.After(10 * time.Second)
		for done := false; !done; {
			select {
			case m := <-pc.Messages():
				msg := Message{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value}
				if len(m.Headers) > 0 {
					msg.Headers = map[string]string{}
					for _, h := range m.Headers {
						msg.Headers[string(h.Key)] = string(h.Value)
					}
				}
				out = append(out, msg)
				done = m.Offset+1 >= end
			case err := <-pc.Errors():
				t.Fatal(err)
			case <-timeout:
				t.Fatalf("reading %s[%d]: timeout before offset %d", topic, p, end)
			}
		}
		pc.Close()
	}
	return out
}

// Count returns the number of messages on topic (sum of high-water marks; the
// topics tests use are never trimmed). It returns 0 for a missing topic.
func Count(t testing.TB, brokers, topic string) int64 {
	t.Helper()
	client, err := sarama.NewClient(strings.Split(brokers, ","), Config())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0
	}
	var n int64
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		n += end
	}
	return n
}

// Topics lists the cluster's topics.
func Topics(t testing.TB, brokers string) []string {
	t.Helper()
	client, err := sarama.NewClient(strings.Split(brokers, ","), Config())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ts, err := client.Topics()
	if err != nil {
		t.Fatal(err)
	}
	return ts
}
