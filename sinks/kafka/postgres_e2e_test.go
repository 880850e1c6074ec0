package kafka_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/understudy/understudy/cdc/kafka/kafkatest"
	skafka "github.com/understudy/understudy/sinks/kafka"
	"github.com/understudy/understudy/testenv"
)

// A Postgres pipeline with a Postgres target also publishes its changes: snapshot
// rows as "r", then insert/update/delete as c/u/d (+ tombstone), keyed by the
// transformed primary key. A topic mirror in the same deployment replaces an
// email exactly as the database pipeline did (same domain, same mapping store).
func TestPublishPostgresChangesAndSameReplacementAsTopics(t *testing.T) {
	pg := testenv.Postgres(t)
	prod, test := pg.NewDatabase(t), pg.NewDatabase(t)
	pg.Exec(t, prod, `CREATE TABLE customers (id int PRIMARY KEY, email text, name text);
		INSERT INTO customers VALUES (1, 'alice@prod.example', 'Alice Real'), (2, 'bob@prod.example', 'Bob Real')`)
	_, src := kafkatest.Cluster(t, 1, "signups")
	_, dst := kafkatest.Cluster(t, 0)
	kafkatest.Produce(t, src, kafkatest.Message{Topic: "signups", Key: []byte("s1"), Value: []byte(`{"email":"alice@prod.example"}`)})

	d := newDeployment(t, `
secret: ${UNDERSTUDY_SECRET}
metrics: off
pipelines:
  - name: bank
    source: `+prod+`
    target: `+test+`
    publish: kafka://`+dst+`?prefix=understudy
    tables: [public.customers]
    rules:
      public.customers:
        email: {replace: email, domain: email}
        name: {replace: full_name}
  - name: signups
    source: kafka://`+src+`/signups
    target: kafka://`+dst+`
    tables: [signups]
    rules:
      signups:
        value:
          json:
            $.email: {replace: email, domain: email}
`)
	const topic = "understudy.public.customers"
	stop := d.start("bank")
	waitCount(t, dst, topic, 2)
	pg.Exec(t, prod, `INSERT INTO customers VALUES (3, 'carol@prod.example', 'Carol Real')`,
		`UPDATE customers SET name = 'Alice Renamed' WHERE id = 1`,
		`DELETE FROM customers WHERE id = 2`)
	waitCount(t, dst, topic, 6) // r r c u d + tombstone
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stop = d.start("signups")
	waitCount(t, dst, "signups", 1)
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	var events []skafka.Envelope
	var keys []string
	for _, m := range kafkatest.ReadAll(t, dst, topic) {
		keys = append(keys, string(m.Key))
		if m.Value == nil {
			events = append(events, skafka.Envelope{Op: "tombstone"})
			continue
		}
		var e skafka.Envelope
		if err := json.Unmarshal(m.Value, &e); err != nil {
			t.Fatal(err)
		}
		for _, img := range []map[string]any{e.Before, e.After} {
			for _, v := range img {
				if s, ok := v.(string); ok && (len(s) > 12 && s[len(s)-12:] == "prod.example" || s == "Alice Real" || s == "Bob Real") {
					t.Fatalf("production value in an event: %+v", e)
				}
			}
		}
		events = append(events, e)
	}
	ops := ""
	for _, e := range events {
		ops += e.Op + " "
	}
	if ops != "r r c u d tombstone " {
		t.Fatalf("ops = %q", ops)
	}
	if keys[0] != `{"id":1}` || keys[4] != `{"id":2}` || keys[5] != `{"id":2}` {
		t.Fatalf("keys = %q", keys)
	}
	r, c, u, del := events[0], events[2], events[3], events[4]
	if r.Source.Snapshot != "true" || r.Source.Connector != "postgresql" || r.Source.Schema != "public" ||
		r.Source.Table != "customers" || r.Source.Name != "bank" || r.Before != nil || r.After["id"] != float64(1) {
		t.Fatalf("snapshot event: %+v", r)
	}
	if c.Source.Snapshot != "false" || c.After["id"] != float64(3) || c.Source.TsMs == 0 || c.TsMs == 0 {
		t.Fatalf("insert event: %+v", c)
	}
	if u.After["id"] != float64(1) || u.After["name"] == "Alice Renamed" || u.After["email"] != r.After["email"] {
		t.Fatalf("update event: %+v (snapshot email %v)", u, r.After["email"])
	}
	if del.After != nil || del.Before["id"] != float64(2) {
		t.Fatalf("delete event: %+v", del)
	}

	// The same replacement in the topic mirror, the event stream and the target.
	var pgEmail string
	conn, err := pgx.Connect(context.Background(), test)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(context.Background(), `SELECT email FROM customers WHERE id = 1`).Scan(&pgEmail); err != nil {
		t.Fatal(err)
	}
	var mirrored struct{ Email string }
	if err := json.Unmarshal(kafkatest.ReadAll(t, dst, "signups")[0].Value, &mirrored); err != nil {
		t.Fatal(err)
	}
	if pgEmail == "alice@prod.example" || mirrored.Email != pgEmail || r.After["email"] != pgEmail {
		t.Fatalf("alice's email: target %q, topic %q, event %v", pgEmail, mirrored.Email, r.After["email"])
	}
}
