// Package kafka writes to a test Kafka cluster, in two forms:
//
//   - Mirror (target: kafka://…): the sink of a topic-mirror pipeline (source
//     cdc/kafka). Each message goes to the topic of the same name, or the one
//     rename= names, to the same partition when the target topic has as many
//     partitions as the source's, else by key (Kafka's murmur2, like the Java
//     client), with its headers.
//   - Publisher (publish: kafka://…?prefix=understudy, or a target of a database
//     pipeline): every anonymized change as a Debezium-compatible JSON event on
//     topic <prefix>.<schema>.<table>, keyed by the transformed primary key. See
//     docs/kafka.md for the envelope.
//
// Both produce with the idempotent producer, acks=all and one request in flight
// per broker (so retries never reorder), and Apply/Load return only once every
// message is acknowledged: the pipeline checkpoints after that, so a crash
// re-sends (at-least-once), never skips.
//
// Replica marker: a cluster is a test replica when it has the topic
// __understudy_replica. Prepare creates it when the cluster has no topic but
// internal ones (names starting with "_"); a cluster with other topics and no marker
// is refused (create the marker topic by hand to declare it a replica), and so is
// a target sharing a broker with a Kafka source. Kafka has no transactions that
// could hold the pipeline checkpoint, so these sinks are not
// TransactionalCheckpointers: the pipeline keeps checkpoints in the file or Redis
// store.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/understudy/understudy/cdc"
	cdckafka "github.com/understudy/understudy/cdc/kafka"
	"github.com/understudy/understudy/sinks"
)

// MarkerTopic marks a Kafka cluster as an understudy replica.
const MarkerTopic = "__understudy_replica"

func init() {
	sinks.Register(func(ctx context.Context, opts sinks.Options) (sinks.Sink, error) {
		if !opts.Publish && strings.HasPrefix(opts.SourceURL, "kafka://") {
			return NewMirror(ctx, opts)
		}
		return NewPublisher(ctx, opts)
	}, "kafka")
}

// conn is what both sinks share: the client, the producer and the marker check.
type conn struct {
	url       *cdckafka.URL
	client    sarama.Client
	producer  sarama.SyncProducer
	sourceURL string

	mu       sync.Mutex
	prepared bool
}

// hintPartitioner honours a partition chosen by the sink (Metadata holds an
// int32) and hashes the key like the Java client otherwise.
type hintPartitioner struct{ hash sarama.Partitioner }

func newHintPartitioner(topic string) sarama.Partitioner {
	return hintPartitioner{sarama.NewReferenceHashPartitioner(topic)}
}

func (h hintPartitioner) Partition(m *sarama.ProducerMessage, n int32) (int32, error) {
	if p, ok := m.Metadata.(int32); ok && p < n {
		return p, nil
	}
	return h.hash.Partition(m, n)
}

func (hintPartitioner) RequiresConsistency() bool { return true }

func dial(opts sinks.Options) (*conn, error) {
	u, err := cdckafka.ParseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(opts.SourceURL, "kafka://") {
		if su, err := cdckafka.ParseURL(opts.SourceURL); err == nil && cdckafka.SameCluster(u, su) {
			return nil, fmt.Errorf("kafka: the target shares a broker with the source (%s): %w", strings.Join(u.Brokers, ","), sinks.ErrNotReplica)
		}
	}
	cfg, err := u.Config()
	if err != nil {
		return nil, err
	}
	cfg.Metadata.AllowAutoTopicCreation = false // topics are created by Prepare, after the marker check
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Retry.Max = 10
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Partitioner = newHintPartitioner
	cfg.Producer.Flush.Bytes = 1 << 20
	cfg.Producer.Flush.Frequency = time.Millisecond
	// A produce batch must fit the broker's message.max.bytes (1 MiB by default,
	// in Kafka and kfake alike); sarama cuts batches at this size. A larger value
	// only works against topics configured for it, hence the option.
	cfg.Producer.MaxMessageBytes = 1000000
	if v := u.Query.Get("max_message_bytes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1024 {
			return nil, fmt.Errorf("kafka: max_message_bytes=%s: give a byte count ≥ 1024 no larger than the topics' max.message.bytes", v)
		}
		cfg.Producer.MaxMessageBytes = n
	}
	client, err := sarama.NewClient(u.Brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("kafka: connecting to %s: %w", strings.Join(u.Brokers, ","), err)
	}
	return &conn{url: u, client: client, sourceURL: opts.SourceURL}, nil
}

// checkMarker implements the replica rule (see the package comment).
func (c *conn) checkMarker() error {
	if err := c.client.RefreshMetadata(); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	topics, err := c.client.Topics()
	if err != nil {
		return fmt.Errorf("kafka: listing topics: %w", err)
	}
	if slices.Contains(topics, MarkerTopic) {
		return nil
	}
	var user []string
	for _, t := range topics {
		if !strings.HasPrefix(t, "_") {
			user = append(user, t)
		}
	}
	if len(user) > 0 {
		return fmt.Errorf("kafka: cluster %s has topics (%s…) and no %s topic; if it is a test cluster, create that topic to mark it as an understudy replica: %w",
			strings.Join(c.url.Brokers, ","), user[0], MarkerTopic, sinks.ErrNotReplica)
	}
	return c.createTopic(MarkerTopic, 1)
}

func (c *conn) admin() (sarama.ClusterAdmin, error) {
	return sarama.NewClusterAdminFromClient(nopCloseClient{c.client})
}

type nopCloseClient struct{ sarama.Client }

func (nopCloseClient) Close() error { return nil }

// createTopic creates topic with n partitions (n ≤ 0: the partitions= option, else
// 1) unless it exists.
func (c *conn) createTopic(topic string, n int) error {
	if n <= 0 {
		n = 1
		if v := c.url.Query.Get("partitions"); v != "" {
			fmt.Sscan(v, &n)
		}
	}
	rf := int16(-1)
	if v := c.url.Query.Get("replication"); v != "" {
		fmt.Sscan(v, &rf)
	}
	admin, err := c.admin()
	if err != nil {
		return err
	}
	defer admin.Close()
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: int32(n), ReplicationFactor: rf}, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		var te *sarama.TopicError
		if !errors.As(err, &te) || te.Err != sarama.ErrTopicAlreadyExists {
			return fmt.Errorf("kafka: creating topic %s: %w", topic, err)
		}
	}
	// Wait for the new topic's metadata so the first send finds its leader.
	for range 50 {
		if err := c.client.RefreshMetadata(topic); err == nil {
			if ps, err := c.client.Partitions(topic); err == nil && len(ps) > 0 {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("kafka: topic %s was created but has no metadata yet", topic)
}

func (c *conn) ensureTopics(topics map[string]int) error {
	if err := c.client.RefreshMetadata(); err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	have, err := c.client.Topics()
	if err != nil {
		return err
	}
	for t, n := range topics {
		if !slices.Contains(have, t) {
			if err := c.createTopic(t, n); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *conn) prepare(topics map[string]int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.prepared {
		if err := c.checkMarker(); err != nil {
			return err
		}
		c.prepared = true
	}
	if err := c.ensureTopics(topics); err != nil {
		return err
	}
	if c.producer == nil {
		p, err := sarama.NewSyncProducerFromClient(c.client)
		if err != nil {
			return fmt.Errorf("kafka: producer: %w", err)
		}
		c.producer = p
	}
	return nil
}

// send produces msgs and returns once every one is acknowledged by all in-sync
// replicas, or the first error.
func (c *conn) send(ctx context.Context, msgs []*sarama.ProducerMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	if c.producer == nil {
		return errors.New("kafka: sink used before Prepare")
	}
	if err := c.producer.SendMessages(msgs); err != nil {
		var pe sarama.ProducerErrors
		if errors.As(err, &pe) && len(pe) > 0 {
			return fmt.Errorf("kafka: %d of %d messages not delivered, first to %s: %w", len(pe), len(msgs), pe[0].Msg.Topic, pe[0].Err)
		}
		return fmt.Errorf("kafka: %w", err)
	}
	return nil // delivered: a cancelled ctx no longer matters
}

func (c *conn) close() error {
	var errs []error
	if c.producer != nil {
		errs = append(errs, c.producer.Close())
	}
	errs = append(errs, c.client.Close())
	return errors.Join(errs...)
}

// bytesOf renders a key or value column for the wire.
func bytesOf(v any) []byte {
	switch x := v.(type) {
	case nil:
		return nil
	case []byte:
		return x
	case cdc.JSON:
		return x
	case string:
		return []byte(x)
	default:
		return []byte(cdc.Canonical(v))
	}
}
