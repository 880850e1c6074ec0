package kafka

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/sinks"
)

// UnavailableValue stands in, as in Debezium, for a column the source did not
// send with an update (a Postgres TOASTed value that did not change).
const UnavailableValue = "__debezium_unavailable_value"

// Publisher publishes anonymized changes as Debezium-compatible change events:
//
//	topic  <prefix>.<schema>.<table>       (prefix= option, default "understudy")
//	key    {"id":42}                        the transformed primary key, as JSON
//	value  {"before":…,"after":…,"op":"c|u|d|t|r","ts_ms":…,
//	        "source":{"version","connector","name","ts_ms","snapshot","db","schema","table"}}
//
// i.e. Debezium's JSON converter with schemas.enable=false,
// decimal.handling.mode=string, binary.handling.mode=base64 and timestamps as
// ISO-8601 strings; JSON columns are strings holding the document (Debezium's
// io.debezium.data.Json). A delete is followed by a tombstone (key, null value)
// for log compaction unless tombstones=false.
type Publisher struct {
	*conn
	prefix     string
	pipeline   string
	connector  string
	db         string
	tombstones bool

	mu   sync.Mutex
	keys map[string][]string // table → key columns
	now  func() time.Time
}

// NewPublisher connects to the cluster; nothing is written before Prepare.
func NewPublisher(_ context.Context, opts sinks.Options) (*Publisher, error) {
	c, err := dial(opts)
	if err != nil {
		return nil, err
	}
	p := &Publisher{conn: c, prefix: c.url.Query.Get("prefix"), pipeline: opts.Pipeline,
		tombstones: c.url.Query.Get("tombstones") != "false", keys: map[string][]string{}, now: time.Now}
	if p.prefix == "" {
		p.prefix = "understudy"
	}
	if su, err := url.Parse(opts.SourceURL); err == nil {
		p.connector = strings.ToLower(su.Scheme)
		switch p.connector {
		case "postgres":
			p.connector = "postgresql"
		case "mariadb":
			p.connector = "mysql"
		}
		p.db = strings.Trim(su.Path, "/")
	}
	return p, nil
}

// Topic is the topic of a table's events.
func (p *Publisher) Topic(table string) string { return p.prefix + "." + table }

// Prepare checks the marker and creates each table's topic (partitions= option,
// default 1).
func (p *Publisher) Prepare(ctx context.Context, tables []cdc.Table) error {
	want := map[string]int{}
	p.mu.Lock()
	for _, t := range tables {
		want[p.Topic(t.Name)] = 0
		p.keys[t.Name] = t.Key
	}
	p.mu.Unlock()
	return p.prepare(want)
}

// Load publishes snapshot rows as op "r" events.
func (p *Publisher) Load(ctx context.Context, table string, rows []cdc.Row) error {
	p.mu.Lock()
	keyCols := p.keys[table]
	p.mu.Unlock()
	msgs := make([]*sarama.ProducerMessage, 0, len(rows))
	for _, r := range rows {
		key := cdc.Row{}
		for _, k := range keyCols {
			key[k] = r[k]
		}
		m, err := p.event(cdc.Change{Table: table, Op: cdc.Insert, Key: key, After: r}, true)
		if err != nil {
			return err
		}
		msgs = append(msgs, m...)
	}
	return p.send(ctx, msgs)
}

// Apply publishes changes in order and returns once all are acknowledged.
func (p *Publisher) Apply(ctx context.Context, changes []cdc.Change) error {
	msgs := make([]*sarama.ProducerMessage, 0, len(changes))
	for _, c := range changes {
		m, err := p.event(c, false)
		if err != nil {
			return err
		}
		msgs = append(msgs, m...)
	}
	return p.send(ctx, msgs)
}

// Envelope is a change event's value.
type Envelope struct {
	Before map[string]any `json:"before"`
	After  map[string]any `json:"after"`
	Source EventSource    `json:"source"`
	Op     string         `json:"op"`
	TsMs   int64          `json:"ts_ms"`
}

// EventSource is the envelope's source block.
type EventSource struct {
	Version   string `json:"version"`
	Connector string `json:"connector"`
	Name      string `json:"name"`
	TsMs      int64  `json:"ts_ms"`
	Snapshot  string `json:"snapshot"`
	DB        string `json:"db"`
	Schema    string `json:"schema,omitempty"`
	Table     string `json:"table"`
}

func (p *Publisher) event(c cdc.Change, snapshot bool) ([]*sarama.ProducerMessage, error) {
	schema, table := cdc.SplitName(c.Table)
	env := Envelope{
		Source: EventSource{Version: "understudy", Connector: p.connector, Name: p.pipeline,
			Snapshot: "false", DB: p.db, Schema: schema, Table: table},
		TsMs: p.now().UnixMilli(),
	}
	if p.connector == "mysql" {
		// MySQL's schema is its database: Debezium's MySQL source block names
		// the table's database in db and has no schema field.
		env.Source.DB, env.Source.Schema = schema, ""
	}
	if !c.CommitTime.IsZero() {
		env.Source.TsMs = c.CommitTime.UnixMilli()
	} else {
		env.Source.TsMs = env.TsMs
	}
	switch c.Op {
	case cdc.Insert:
		env.Op, env.After = "c", row(c.After)
		if snapshot {
			env.Op, env.Source.Snapshot = "r", "true"
		}
	case cdc.Update:
		env.Op, env.Before, env.After = "u", row(c.Before), row(c.After)
		for _, u := range c.Unchanged {
			env.After[u] = UnavailableValue
		}
	case cdc.Delete:
		env.Op, env.Before = "d", row(c.Before)
		if env.Before == nil {
			env.Before = row(c.Key) // replica identity default: only the key is known
		}
	case cdc.Truncate:
		env.Op = "t"
	default:
		return nil, fmt.Errorf("kafka: unknown op %v", c.Op)
	}
	value, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("kafka: encoding event of %s: %w", c.Table, err)
	}
	msg := &sarama.ProducerMessage{Topic: p.Topic(c.Table), Value: sarama.ByteEncoder(value)}
	if c.Op != cdc.Truncate && c.Key != nil {
		key, err := json.Marshal(row(c.Key))
		if err != nil {
			return nil, err
		}
		msg.Key = sarama.ByteEncoder(key)
	}
	out := []*sarama.ProducerMessage{msg}
	if c.Op == cdc.Delete && p.tombstones && msg.Key != nil {
		out = append(out, &sarama.ProducerMessage{Topic: msg.Topic, Key: msg.Key})
	}
	return out, nil
}

// row renders a row's normalized values as JSON values (see Publisher).
func row(r cdc.Row) map[string]any {
	if r == nil {
		return nil
	}
	out := make(map[string]any, len(r))
	for k, v := range r {
		out[k] = jsonValue(v)
	}
	return out
}

func jsonValue(v any) any {
	switch x := v.(type) {
	case nil, bool, int64, uint64, float64, string, json.Number:
		return x
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case cdc.JSON:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = jsonValue(e)
		}
		return a
	default:
		return cdc.Canonical(v) // Decimal, Date, TimeOfDay, Interval: exact text
	}
}

// Clear refuses an unmarked cluster and otherwise leaves the event topics: an
// event log is history, and consumers see the reload as new "r" events.
func (p *Publisher) Clear(ctx context.Context, tables []string) error {
	p.conn.mu.Lock()
	defer p.conn.mu.Unlock()
	return p.checkMarker()
}

func (p *Publisher) Close() error { return p.close() }
