// Package kafka is the topic-mirror source: it reads production Kafka topics so a
// pipeline can copy them, anonymized, into the test cluster (sinks/kafka).
//
// Each topic is a cdc.Table named after the topic with the columns
//
//	key        the message key: string (bytes when not UTF-8), NULL when absent.
//	           It is the table's primary key, so a key rule rewrites Change.Key and
//	           the row alike and a key maps the same way in every message.
//	value      the message value: cdc.JSON when it is JSON (rules address it by JSON
//	           path: value: {json: {$.email: {replace: email}}}); NULL for a
//	           tombstone; otherwise per the non_json policy.
//	headers    the headers as JSON [{"key":"k","value":"v"}] (value_base64 for
//	           binary values), NULL when none; rules may rewrite them too.
//	partition  the source partition, so the mirror writes the same partition.
//
// Every message is an Insert (a mirror appends), and its own transaction end:
// every Batch's Commit is the whole Position after its last message.
//
// JSON values are passed as the bytes the producer wrote (validated, not
// re-encoded), so a message no rule touches is mirrored byte for byte.
//
// Non-JSON values (non_json=): fail (default) stops the pipeline with the topic,
// partition and offset; drop skips the message (its offset is still committed);
// pass forwards the value as bytes — a json rule on value then keyed-hashes the
// whole value rather than copy production text past an anonymizing rule. Both are
// counted (NonJSON).
//
// Offsets: the source reads partitions directly (no group membership, so no
// rebalance pauses; the pipeline lock already keeps one reader per pipeline) and
// commits the consumer group's offsets in Ack, i.e. only what the pipeline has
// checkpointed, so lag tools see the mirror's progress and a fresh pipeline starts
// from the group's committed offsets.
package kafka

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"

	"github.com/understudy/understudy/cdc"
)

func init() { cdc.Register(Open, "kafka") }

// Non-JSON value policies.
const (
	NonJSONFail = "fail"
	NonJSONDrop = "drop"
	NonJSONPass = "pass"
)

// Source reads topics of one production cluster.
type Source struct {
	url     *URL
	cfg     *sarama.Config
	topics  []string
	group   string
	start   string
	nonJSON string
	batch   int

	mu     sync.Mutex
	client sarama.Client
	parts  map[string][]int32

	// Background offset commits (see Ack).
	kick      chan struct{}
	stopped   chan struct{}
	pending   Position
	commitErr error

	dropped, passed atomic.Uint64
}

// Open creates the source from its URL (see URL for the options); topics are the
// config's tables plus those in the URL path. It does not connect.
func Open(_ context.Context, opts cdc.SourceOptions) (cdc.Source, error) {
	u, err := ParseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	cfg, err := u.Config()
	if err != nil {
		return nil, err
	}
	cfg.Metadata.AllowAutoTopicCreation = false // a source only reads
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	// Let each partition's fetcher run a batch ahead of the pipeline.
	cfg.ChannelBufferSize = 2048
	s := &Source{url: u, cfg: cfg, group: u.Query.Get("group"), start: u.Query.Get("start"),
		nonJSON: u.Query.Get("non_json"), batch: 2000}
	if s.group == "" {
		s.group = "understudy-" + opts.Pipeline
	}
	switch s.start {
	case "":
		s.start = "earliest"
	case "earliest", "latest":
	default:
		return nil, fmt.Errorf("kafka: start=%s: use earliest or latest", s.start)
	}
	switch s.nonJSON {
	case "":
		s.nonJSON = NonJSONFail
	case NonJSONFail, NonJSONDrop, NonJSONPass:
	default:
		return nil, fmt.Errorf("kafka: non_json=%s: use drop, pass or fail", s.nonJSON)
	}
	for _, t := range append(slices.Clone(opts.Tables), u.Topics...) {
		if !slices.Contains(s.topics, t) {
			s.topics = append(s.topics, t)
		}
	}
	if len(s.topics) == 0 {
		return nil, errors.New("kafka: no topic selected; list them in tables: or in the URL path (kafka://broker/topicA,topicB)")
	}
	return s, nil
}

// NonJSON returns how many non-JSON values were dropped and passed.
func (s *Source) NonJSON() (dropped, passed uint64) { return s.dropped.Load(), s.passed.Load() }

// Group is the consumer group whose offsets Ack commits.
func (s *Source) Group() string { return s.group }

// PartitionsType is the Column.Type of the partition column: it carries the
// source topic's partition count so that the mirror target can create the topic
// alike and knows when partition numbers can be kept.
func PartitionsType(n int) string { return "int32(partitions=" + strconv.Itoa(n) + ")" }

// ParsePartitionsType reads PartitionsType's count; 0 when absent.
func ParsePartitionsType(t string) int {
	_, rest, ok := strings.Cut(t, "partitions=")
	if !ok {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSuffix(rest, ")"))
	return n
}

// Table is the schema of a mirrored topic.
func Table(topic string, partitions int) cdc.Table {
	return cdc.Table{
		Name: topic,
		Columns: []cdc.Column{
			{Name: "key", Type: "bytes", Kind: cdc.KindString, Nullable: true},
			{Name: "value", Type: "json", Kind: cdc.KindJSON, Nullable: true},
			{Name: "headers", Type: "headers", Kind: cdc.KindJSON, Nullable: true},
			{Name: "partition", Type: PartitionsType(partitions), Kind: cdc.KindInt},
		},
		Key: []string{"key"},
	}
}

func (s *Source) Open(ctx context.Context) ([]cdc.Table, error) {
	client, err := sarama.NewClient(s.url.Brokers, s.cfg)
	if err != nil {
		return nil, fmt.Errorf("kafka: connecting to %s: %w", strings.Join(s.url.Brokers, ","), err)
	}
	have, err := client.Topics()
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("kafka: listing topics: %w", err)
	}
	var problems []string
	parts := map[string][]int32{}
	var tables []cdc.Table
	for _, t := range s.topics {
		if !slices.Contains(have, t) {
			problems = append(problems, fmt.Sprintf("kafka: topic %s does not exist on the source cluster; fix tables: or the URL", t))
			continue
		}
		ps, err := client.Partitions(t)
		if err != nil {
			problems = append(problems, fmt.Sprintf("kafka: topic %s: %v", t, err))
			continue
		}
		parts[t] = ps
		tables = append(tables, Table(t, len(ps)))
	}
	if len(problems) > 0 {
		client.Close()
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	s.mu.Lock()
	s.client, s.parts = client, parts
	s.mu.Unlock()
	return tables, nil
}

// BeginSnapshot captures the start position: the group's committed offsets, else
// each partition's beginning (start=earliest) or end (start=latest), resolved to
// numbers now so nothing produced before the stream starts is skipped. A topic has
// no snapshot: the stream from that position is the copy.
func (s *Source) BeginSnapshot(ctx context.Context, resume cdc.Position) (cdc.Snapshot, error) {
	if resume != nil {
		return emptySnapshot{resume}, nil
	}
	pos := Position{}
	committed, err := s.committed()
	if err != nil {
		return nil, err
	}
	for _, t := range s.topics {
		for _, p := range s.parts[t] {
			if off, ok := committed[t][p]; ok && off >= 0 {
				pos.set(t, p, off)
				continue
			}
			which := sarama.OffsetOldest
			if s.start == "latest" {
				which = sarama.OffsetNewest
			}
			off, err := s.client.GetOffset(t, p, which)
			if err != nil {
				return nil, fmt.Errorf("kafka: offset of %s[%d]: %w", t, p, err)
			}
			pos.set(t, p, off)
		}
	}
	return emptySnapshot{pos.Encode()}, nil
}

func (s *Source) committed() (Position, error) {
	admin, err := sarama.NewClusterAdminFromClient(nopCloseClient{s.client})
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	res, err := admin.ListConsumerGroupOffsets(s.group, s.parts)
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return Position{}, nil // no offsets committed yet
	}
	if err != nil {
		return nil, fmt.Errorf("kafka: reading offsets of group %s: %w", s.group, err)
	}
	pos := Position{}
	for t, m := range res.Blocks {
		for p, b := range m {
			if b.Err == sarama.ErrNoError && b.Offset >= 0 {
				pos.set(t, p, b.Offset)
			}
		}
	}
	return pos, nil
}

// nopCloseClient lets a ClusterAdmin borrow the source's client.
type nopCloseClient struct{ sarama.Client }

func (nopCloseClient) Close() error { return nil }

type emptySnapshot struct{ pos cdc.Position }

func (e emptySnapshot) Position() cdc.Position { return e.pos }
func (emptySnapshot) Chunks(context.Context, cdc.Table) ([]cdc.Chunk, error) {
	return nil, nil
}
func (emptySnapshot) ReadChunk(context.Context, cdc.Chunk, func([]cdc.Row) error) error {
	return nil
}
func (emptySnapshot) Close() error { return nil }

// chunk is what one partition's reader hands the stream: the changes of the
// messages it had at hand, converted in the reader's goroutine (so partitions
// convert in parallel and a channel operation carries many messages), and the
// offset after the last of them. err ends the stream after the chunk's messages.
type chunk struct {
	topic      string
	partition  int32
	next       int64 // offset after the chunk's last message, kept or dropped
	changes    []cdc.Change
	commitTime time.Time
	err        error
}

// Stream reads every partition from its offset in from (a partition missing from
// it, added since, from its beginning) and sends batches in per-partition order.
func (s *Source) Stream(ctx context.Context, from cdc.Position, out chan<- cdc.Batch) error {
	pos, err := ParsePosition(from)
	if err != nil {
		return err
	}
	consumer, err := sarama.NewConsumerFromClient(s.client)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk, 16)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		consumer.Close() // closes the partition consumers, ending the readers
		wg.Wait()
	}()
	for _, t := range s.topics {
		ps, err := s.client.Partitions(t)
		if err != nil {
			return fmt.Errorf("kafka: partitions of %s: %w", t, err)
		}
		for _, p := range ps {
			off, ok := pos[t][p]
			if !ok {
				off = sarama.OffsetOldest
			}
			pc, err := consumer.ConsumePartition(t, p, off)
			if errors.Is(err, sarama.ErrOffsetOutOfRange) {
				return fmt.Errorf("kafka: %s[%d] offset %d is no longer on the broker (retention): %w", t, p, off, cdc.ErrPositionLost)
			}
			if err != nil {
				return fmt.Errorf("kafka: consuming %s[%d]: %w", t, p, err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.read(ctx, pc, t, p, chunks)
			}()
		}
	}
	for {
		var c chunk
		select {
		case c = <-chunks:
		case <-ctx.Done():
			return ctx.Err()
		}
		b := cdc.Batch{Changes: c.changes}
	gather:
		for {
			if c.err != nil {
				return c.err
			}
			pos.set(c.topic, c.partition, c.next)
			if !c.commitTime.IsZero() {
				b.CommitTime = c.commitTime
			}
			if len(b.Changes) >= s.batch {
				break
			}
			select {
			case c = <-chunks:
				b.Changes = append(b.Changes, c.changes...)
			default:
				break gather
			}
		}
		b.Commit = pos.Encode()
		select {
		case out <- b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// read converts one partition's messages and sends them in chunks of what is at
// hand (up to the batch size), in offset order.
func (s *Source) read(ctx context.Context, pc sarama.PartitionConsumer, topic string, part int32, chunks chan<- chunk) {
	send := func(c chunk) bool {
		select {
		case chunks <- c:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		var m *sarama.ConsumerMessage
		select {
		case m = <-pc.Messages():
			if m == nil {
				return
			}
		case e, ok := <-pc.Errors():
			if !ok {
				return
			}
			send(chunk{err: fmt.Errorf("kafka: %s[%d]: %w", e.Topic, e.Partition, e.Err)})
			return
		case <-ctx.Done():
			return
		}
		// Size the chunk for what is already buffered, so it never grows.
		c := chunk{topic: topic, partition: part, changes: make([]cdc.Change, 0, min(s.batch, 1+len(pc.Messages())))}
	drain:
		for {
			ch, keep, err := s.change(m)
			if err != nil {
				c.err = err
				send(c)
				return
			}
			if keep {
				c.changes = append(c.changes, ch)
			}
			c.next = m.Offset + 1
			if !m.Timestamp.IsZero() {
				c.commitTime = m.Timestamp.UTC()
			}
			if len(c.changes) >= s.batch {
				break
			}
			select {
			case m = <-pc.Messages():
				if m == nil {
					break drain
				}
			default:
				break drain
			}
		}
		if !send(c) {
			return
		}
	}
}

// change converts one message; keep is false for a dropped non-JSON value.
func (s *Source) change(m *sarama.ConsumerMessage) (cdc.Change, bool, error) {
	var key any
	switch {
	case m.Key == nil:
	case utf8.Valid(m.Key):
		key = string(m.Key)
	default:
		key = m.Key
	}
	var value any
	switch {
	case m.Value == nil: // tombstone
	case len(m.Value) == 0:
		value = []byte{} // empty stays empty
	case validJSON(m.Value):
		value = cdc.JSON(m.Value)
	default:
		switch s.nonJSON {
		case NonJSONDrop:
			s.dropped.Add(1)
			return cdc.Change{}, false, nil
		case NonJSONPass:
			s.passed.Add(1)
			value = m.Value
		default:
			return cdc.Change{}, false, fmt.Errorf("kafka: %s[%d] offset %d: value is not JSON and non_json=fail; fix the producer, or set non_json=drop or non_json=pass in the source URL", m.Topic, m.Partition, m.Offset)
		}
	}
	row := cdc.Row{"key": key, "value": value, "headers": EncodeHeaders(m.Headers), "partition": int64(m.Partition)}
	return cdc.Change{Table: m.Topic, Op: cdc.Insert, Key: cdc.Row{"key": key}, After: row, CommitTime: m.Timestamp.UTC()}, true, nil
}

type header struct {
	Key         string  `json:"key"`
	Value       *string `json:"value,omitempty"`
	ValueBase64 *string `json:"value_base64,omitempty"`
}

// EncodeHeaders renders headers as the headers column; nil when there are none.
func EncodeHeaders(hs []*sarama.RecordHeader) any {
	if len(hs) == 0 {
		return nil
	}
	out := make([]header, len(hs))
	for i, h := range hs {
		out[i].Key = string(h.Key)
		switch {
		case h.Value == nil:
		case utf8.Valid(h.Value):
			v := string(h.Value)
			out[i].Value = &v
		default:
			v := base64.StdEncoding.EncodeToString(h.Value)
			out[i].ValueBase64 = &v
		}
	}
	j, _ := cdc.MarshalJSON(out)
	return j
}

// DecodeHeaders is EncodeHeaders' inverse (for the mirror target).
func DecodeHeaders(v any) ([]sarama.RecordHeader, error) {
	var raw []byte
	switch x := v.(type) {
	case nil:
		return nil, nil
	case cdc.JSON:
		raw = x
	case string:
		raw = []byte(x)
	case []byte:
		raw = x
	default:
		return nil, fmt.Errorf("headers column holds %s, not JSON", cdc.Describe(v))
	}
	var hs []header
	if err := json.Unmarshal(raw, &hs); err != nil {
		return nil, fmt.Errorf("headers column: %w", err)
	}
	out := make([]sarama.RecordHeader, len(hs))
	for i, h := range hs {
		out[i].Key = []byte(h.Key)
		switch {
		case h.Value != nil:
			out[i].Value = []byte(*h.Value)
		case h.ValueBase64 != nil:
			b, err := base64.StdEncoding.DecodeString(*h.ValueBase64)
			if err != nil {
				return nil, fmt.Errorf("headers column: %w", err)
			}
			out[i].Value = b
		}
	}
	return out, nil
}

// Ack commits the consumer group's offsets up to pos, which the pipeline has
// checkpointed. The commit runs in the background, coalescing positions, so an
// OffsetCommit round trip is never on the replication path: the checkpoint, not
// the group, is where a running pipeline resumes; the group's offsets serve lag
// tools and the start of a fresh pipeline. A failed commit is retried with the
// next position and reported by a later Ack; Close commits the last position.
func (s *Source) Ack(ctx context.Context, p cdc.Position) error {
	pos, err := ParsePosition(p)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.kick == nil {
		s.kick, s.stopped = make(chan struct{}, 1), make(chan struct{})
		go s.committer(s.kick, s.stopped)
	}
	s.pending = pos
	err, s.commitErr = s.commitErr, nil
	select { // under mu, so Close cannot close kick meanwhile
	case s.kick <- struct{}{}:
	default:
	}
	s.mu.Unlock()
	return err
}

func (s *Source) committer(kick <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	for range kick {
		s.mu.Lock()
		pos, client := s.pending, s.client
		s.pending = nil
		s.mu.Unlock()
		if pos == nil || client == nil {
			continue
		}
		if err := s.commit(client, pos); err != nil {
			s.mu.Lock()
			s.commitErr = err
			if s.pending == nil {
				s.pending = pos // retried with the next kick or on Close
			}
			s.mu.Unlock()
		}
	}
}

// commit writes the group's offsets for pos (generation -1: a standalone
// committer, as Kafka allows for a group without members).
func (s *Source) commit(client sarama.Client, pos Position) error {
	coord, err := client.Coordinator(s.group)
	if err != nil {
		return fmt.Errorf("kafka: coordinator of group %s: %w", s.group, err)
	}
	req := &sarama.OffsetCommitRequest{Version: 2, ConsumerGroup: s.group,
		ConsumerGroupGeneration: sarama.GroupGenerationUndefined, RetentionTime: -1}
	for t, m := range pos {
		for part, off := range m {
			req.AddBlock(t, part, off, 0, "")
		}
	}
	resp, err := coord.CommitOffset(req)
	if err != nil {
		return fmt.Errorf("kafka: committing offsets of group %s: %w", s.group, err)
	}
	for t, m := range resp.Errors {
		for part, kerr := range m {
			if kerr != sarama.ErrNoError {
				return fmt.Errorf("kafka: committing %s[%d] for group %s: %w", t, part, s.group, kerr)
			}
		}
	}
	return nil
}

// Reset deletes the consumer group, so a reload starts per start= again.
func (s *Source) Reset(ctx context.Context) error {
	admin, err := sarama.NewClusterAdmin(s.url.Brokers, s.cfg)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer admin.Close()
	err = admin.DeleteConsumerGroup(s.group)
	if err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
		return fmt.Errorf("kafka: deleting group %s: %w", s.group, err)
	}
	return nil
}

// FormatPosition renders a position as "topic[partition]=offset …".
func (s *Source) FormatPosition(p cdc.Position) string {
	pos, err := ParsePosition(p)
	if err != nil {
		return "invalid kafka position"
	}
	return pos.String()
}

func (s *Source) Close() error {
	s.mu.Lock()
	kick, stopped := s.kick, s.stopped
	s.kick = nil
	s.mu.Unlock()
	if kick != nil {
		close(kick)
		<-stopped
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var commitErr error
	if s.pending != nil && s.client != nil {
		commitErr = s.commit(s.client, s.pending) // the last acknowledged position
		s.pending = nil
	}
	if s.client != nil {
		err := s.client.Close()
		s.client = nil
		return errors.Join(commitErr, err)
	}
	return commitErr
}
