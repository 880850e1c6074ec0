package kafka_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/understudy/understudy/cdc/kafka/kafkatest"
	_ "github.com/understudy/understudy/cdc/mysql"
	skafka "github.com/understudy/understudy/sinks/kafka"
	"github.com/understudy/understudy/testenv"
)

// A MariaDB pipeline whose only output is its change events (publish:, no
// target): snapshot rows as "r", then insert/update/delete as c/u/d with a
// tombstone, in Debezium's MySQL shape — connector "mysql", db the table's
// database, no schema field, full before images — keyed by the transformed
// primary key, with no production value in any key or event.
func TestPublishMySQLChanges(t *testing.T) {
	my := testenv.MariaDB(t)
	db := my.NewDatabaseName(t)
	my.Exec(t, my.DSN(db), `CREATE TABLE customers (
		id int unsigned NOT NULL PRIMARY KEY, email varchar(120), name varchar(80),
		balance decimal(10,2), profile json, created datetime(3)) DEFAULT CHARSET=utf8mb4`,
		`INSERT INTO customers VALUES (1, 'alice@prod.example', 'Alice Real', 10.50, '{"email":"alice@prod.example","tier":"gold"}', '2024-02-29 12:30:00.125'),
			(2, 'bob@prod.example', 'Bob Real', -3.00, NULL, '2020-01-01 00:00:00')`)
	_, dst := kafkatest.Cluster(t, 0)
	d := newDeployment(t, `
secret: ${UNDERSTUDY_SECRET}
metrics: off
checkpoints: file:state.db
pipelines:
  - name: shop
    source: `+my.URL(db)+`
    publish: kafka://`+dst+`?prefix=understudy
    tables: [`+db+`.customers]
    rules:
      `+db+`.customers:
        id:    {replace: format, domain: customer_id}
        email: {replace: email, domain: email}
        name:  {replace: full_name}
        profile:
          json:
            $.email: {replace: email, domain: email}
`)
	topic := "understudy." + db + ".customers"
	stop := d.start("shop")
	waitCount(t, dst, topic, 2)
	my.Exec(t, my.DSN(db), `INSERT INTO customers VALUES (3, 'carol@prod.example', 'Carol Real', 0, NULL, NULL)`,
		`UPDATE customers SET name = 'Alice Renamed', balance = 11.00 WHERE id = 1`,
		`DELETE FROM customers WHERE id = 2`)
	waitCount(t, dst, topic, 6) // r r c u d + tombstone
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	msgs := kafkatest.ReadAll(t, dst, topic)
	if len(msgs) != 6 {
		t.Fatalf("%d messages on %s, want 6", len(msgs), topic)
	}
	for _, m := range msgs {
		for _, leak := range []string{"prod.example", "Alice Real", "Bob Real", "Carol Real", "Alice Renamed"} {
			if strings.Contains(string(m.Key)+string(m.Value), leak) {
				t.Fatalf("production value %q in key %s value %s", leak, m.Key, m.Value)
			}
		}
	}
	var ev [6]skafka.Envelope
	var raw [6]map[string]json.RawMessage
	for i, m := range msgs[:5] {
		if err := json.Unmarshal(m.Value, &ev[i]); err != nil {
			t.Fatalf("event %d: %v: %s", i, err, m.Value)
		}
		json.Unmarshal(m.Value, &raw[i])
	}
	if msgs[5].Value != nil || string(msgs[5].Key) != string(msgs[4].Key) {
		t.Fatalf("no tombstone after the delete: key %s value %s", msgs[5].Key, msgs[5].Value)
	}
	ops := ""
	for _, e := range ev[:5] {
		ops += e.Op + " "
	}
	if ops != "r r c u d " {
		t.Fatalf("ops = %q", ops)
	}
	// Keys: the transformed id, the same in the key and in every image of the row.
	idOf := func(m map[string]any) string { b, _ := json.Marshal(m["id"]); return string(b) }
	r1, r2, c, u, del := ev[0], ev[1], ev[2], ev[3], ev[4]
	if string(msgs[0].Key) != `{"id":`+idOf(r1.After)+`}` || string(msgs[3].Key) != string(msgs[0].Key) ||
		string(msgs[4].Key) != string(msgs[1].Key) || idOf(r1.After) == "1" {
		t.Fatalf("keys %s %s %s: want the transformed id, alike for one row", msgs[0].Key, msgs[3].Key, msgs[4].Key)
	}
	for i, e := range ev[:5] {
		s := e.Source
		if s.Connector != "mysql" || s.DB != db || s.Table != "customers" || s.Name != "shop" || s.Version != "understudy" || s.TsMs == 0 || e.TsMs == 0 {
			t.Fatalf("event %d source block: %+v", i, s)
		}
		var src map[string]json.RawMessage
		json.Unmarshal(raw[i]["source"], &src)
		if _, ok := src["schema"]; ok {
			t.Fatalf("event %d: Debezium's MySQL source block has no schema field: %s", i, raw[i]["source"])
		}
	}
	if r1.Source.Snapshot != "true" || r1.Before != nil || c.Source.Snapshot != "false" {
		t.Fatalf("snapshot flags: r %+v, c %+v", r1.Source, c.Source)
	}
	// MySQL sends full row images: the update and the delete carry before.
	if u.Before == nil || idOf(u.Before) != idOf(r1.After) || u.Before["email"] != r1.After["email"] || u.After["email"] != r1.After["email"] ||
		u.After["name"] == r1.After["name"] || u.Before["balance"] != "10.50" || u.After["balance"] != "11.00" {
		t.Fatalf("update event: %+v (snapshot %+v)", u, r1)
	}
	if del.After != nil || del.Before == nil || idOf(del.Before) != idOf(r2.After) || del.Before["name"] != r2.After["name"] || del.Before["balance"] != "-3.00" {
		t.Fatalf("delete event: %+v (snapshot %+v)", del, r2)
	}
	if c.Before != nil || c.After["profile"] != nil || c.After["created"] != nil {
		t.Fatalf("insert event: %+v", c)
	}
	// Types: decimal as an exact string, datetime as ISO-8601 (UTC), JSON as a
	// string holding the (anonymized) document.
	if r1.After["created"] != "2024-02-29T12:30:00.125Z" {
		t.Errorf("datetime(3): %v", r1.After["created"])
	}
	var profile map[string]any
	if err := json.Unmarshal([]byte(r1.After["profile"].(string)), &profile); err != nil || profile["tier"] != "gold" || profile["email"] != r1.After["email"] {
		t.Errorf("json column: %v (%v); its email must match the column's replacement %v", r1.After["profile"], err, r1.After["email"])
	}
}
