package kafka

import (
	"context"
	"fmt"
	"strings"

	"github.com/IBM/sarama"

	"github.com/understudy/understudy/cdc"
	cdckafka "github.com/understudy/understudy/cdc/kafka"
	"github.com/understudy/understudy/sinks"
)

// Mirror is the target of a topic-mirror pipeline.
type Mirror struct {
	*conn
	rename map[string]string
	// samePartitions holds the topics whose target partition count equals the
	// source's: only there is a message's partition kept.
	samePartitions map[string]bool
}

// NewMirror connects to the target cluster; nothing is written before Prepare.
func NewMirror(_ context.Context, opts sinks.Options) (*Mirror, error) {
	c, err := dial(opts)
	if err != nil {
		return nil, err
	}
	m := &Mirror{conn: c, rename: map[string]string{}, samePartitions: map[string]bool{}}
	if r := c.url.Query.Get("rename"); r != "" {
		for _, pair := range strings.Split(r, ",") {
			from, to, ok := strings.Cut(pair, ":")
			if !ok || from == "" || to == "" {
				c.close()
				return nil, fmt.Errorf("kafka: rename=%s: write rename=source:target,other:renamed", r)
			}
			m.rename[from] = to
		}
	}
	return m, nil
}

func (m *Mirror) topic(t string) string {
	if r, ok := m.rename[t]; ok {
		return r
	}
	return t
}

// Prepare checks the marker, then creates missing topics with the source's
// partition count and notes which topics can keep partition numbers.
func (m *Mirror) Prepare(ctx context.Context, tables []cdc.Table) error {
	want := map[string]int{}
	src := map[string]int{}
	for _, t := range tables {
		n := 0
		if c, ok := t.Column("partition"); ok {
			n = cdckafka.ParsePartitionsType(c.Type)
		}
		want[m.topic(t.Name)] = n
		src[t.Name] = n
	}
	if err := m.prepare(want); err != nil {
		return err
	}
	for name, n := range src {
		ps, err := m.client.Partitions(m.topic(name))
		if err != nil {
			return fmt.Errorf("kafka: partitions of %s: %w", m.topic(name), err)
		}
		m.samePartitions[name] = n > 0 && len(ps) == n
	}
	return nil
}

// Load has nothing to do: a topic has no snapshot.
func (m *Mirror) Load(ctx context.Context, table string, rows []cdc.Row) error {
	msgs := make([]*sarama.ProducerMessage, 0, len(rows))
	for _, r := range rows {
		msg, err := m.message(table, r)
		if err != nil {
			return err
		}
		msgs = append(msgs, msg)
	}
	return m.send(ctx, msgs)
}

// Apply produces one message per change, in order, and returns once all are
// acknowledged. A Delete (not emitted by the topic source) becomes a tombstone.
func (m *Mirror) Apply(ctx context.Context, changes []cdc.Change) error {
	msgs := make([]*sarama.ProducerMessage, 0, len(changes))
	for _, c := range changes {
		row := c.After
		switch c.Op {
		case cdc.Truncate:
			continue
		case cdc.Delete:
			row = cdc.Row{"key": c.Key["key"]}
		}
		msg, err := m.message(c.Table, row)
		if err != nil {
			return err
		}
		msgs = append(msgs, msg)
	}
	return m.send(ctx, msgs)
}

func (m *Mirror) message(table string, r cdc.Row) (*sarama.ProducerMessage, error) {
	msg := &sarama.ProducerMessage{Topic: m.topic(table)}
	msg.Key, msg.Value = encoder(r["key"]), encoder(r["value"])
	hs, err := cdckafka.DecodeHeaders(r["headers"])
	if err != nil {
		return nil, fmt.Errorf("kafka: topic %s: %w", table, err)
	}
	msg.Headers = hs
	if p, ok := r["partition"].(int64); ok && m.samePartitions[table] {
		msg.Metadata = int32(p)
	}
	return msg, nil
}

// Clear cannot empty a topic's history without deleting it; reset of a mirror
// pipeline re-copies on top, which consumers of a test cluster tolerate as
// replays. It still refuses an unmarked cluster.
func (m *Mirror) Clear(ctx context.Context, tables []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.checkMarker()
}

func (m *Mirror) Close() error { return m.close() }

// encoder renders a key or value column for the wire without copying it.
func encoder(v any) sarama.Encoder {
	switch x := v.(type) {
	case nil:
		return nil
	case string:
		return sarama.StringEncoder(x)
	case cdc.JSON:
		return sarama.ByteEncoder(x)
	case []byte:
		return sarama.ByteEncoder(x)
	}
	return sarama.ByteEncoder(bytesOf(v))
}
