package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/understudy/understudy/testenv"
)

const leakSchema = `
CREATE TABLE people (
  id bigint PRIMARY KEY,
  version int NOT NULL DEFAULT 1,
  name text,
  email text UNIQUE,
  ssn text,
  notes text,
  token text,
  legacy_pii text,
  aliases text[],
  profile jsonb
);
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  person_id bigint REFERENCES people(id),
  ship_to text,
  amount numeric(10,2)
);
INSERT INTO people (id, name, email, ssn, notes, token, legacy_pii, aliases, profile)
SELECT g, 'Person ' || g, 'p' || g || '@corp.example', '123-45-' || lpad(g::text, 4, '0'), 'note ' || g,
       'tok-' || md5(g::text), 'legacy ' || g, ARRAY['Alias ' || g], jsonb_build_object('email', 'p' || g || '@corp.example', 'plan', 'basic')
FROM generate_series(1, 500) g;
INSERT INTO orders SELECT g, 1 + g % 500, 'Street ' || g, g FROM generate_series(1, 1000) g;
`

const leakPipeline = `
  - name: leak
    source: ${PROD_URL}
    target: ${TEST_URL}
    tables: [public.people, public.orders]
    rules:
      public.people:
        name:       {replace: last_name, domain: surname}
        email:      {replace: email, domain: email}
        ssn:        {constant: "000-00-0000"}
        notes:      null
        token:      hash
        legacy_pii: drop
        aliases:    {replace: first_name, domain: given_name}
        profile:
          json:
            $.email: {replace: email, domain: email}
            $.secret: {replace: full_name}
      public.orders:
        ship_to: {replace: street_address, domain: address}
`

// canaries are unique production values planted in sensitive columns. They must
// appear nowhere but production. Their names (not values) are used in messages.
type canaries map[string]string

func newCanaries(t *testing.T) canaries {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	id := "7f3a" + hex.EncodeToString(b)
	c := canaries{}
	for _, k := range []string{"name", "ssn", "notes", "token", "legacy", "alias", "json-secret", "ship-to",
		"stream-name", "stream-token", "stream-notes", "stream-json"} {
		c[k] = "CANARY-" + id + "-" + k
	}
	c["email"] = "canary." + id + "@leak.example"
	c["email-local"] = "canary." + id
	c["stream-email"] = "canary.stream." + id + "@leak.example"
	return c
}

// find returns the names of the canaries hay holds.
func (c canaries) find(hay []byte) []string {
	var names []string
	for name, v := range c {
		if len(containsAny(hay, []string{v})) > 0 {
			names = append(names, name)
		}
	}
	return names
}

// TestCanariesLeakNowhere plants canary values in production's sensitive columns
// (replace, constant, null, hash, drop, arrays, JSON), loads and syncs (streaming
// canaries too), and searches for them in the target database (pg_dump), every
// log of understudy run with -v, /metrics, and the mapping store's raw bytes: the
// embedded file, and in a second run Redis.
func TestCanariesLeakNowhere(t *testing.T) {
	t.Run("FileMappings", func(t *testing.T) { leakScenario(t, "") })
	t.Run("RedisMappings", func(t *testing.T) {
		leakScenario(t, testenv.Redis(t).URL(t))
	})
}

func leakScenario(t *testing.T, redisURL string) {
	c := newCanaries(t)
	e := newEnv(t, leakSchema, "", leakPipeline)
	if redisURL != "" {
		e.writeConfig("mappings: "+redisURL+"\n", leakPipeline)
	}
	e.prodPG.Exec(t, e.prod, fmt.Sprintf(`
		INSERT INTO people (id, name, email, ssn, notes, token, legacy_pii, aliases, profile) VALUES
		  (9001, '%s', '%s', '%s', '%s', '%s', '%s', ARRAY['%s', 'Plain'], '{"email": "%s", "secret": "%s", "plan": "gold"}');
		INSERT INTO orders VALUES (9001, 9001, '%s', 1);`,
		c["name"], c["email"], c["ssn"], c["notes"], c["token"], c["legacy"], c["alias"], c["email"], c["json-secret"], c["ship-to"]))

	e.must("load", "-v")
	metricsAddr := freeAddr(t)
	sync := e.start("sync", "-v", "--metrics", metricsAddr)
	waitFor(t, time.Minute, "/healthz answering", sync, func() bool {
		code, _, err := httpGet("http://" + metricsAddr + "/healthz")
		return err == nil && code > 0
	})

	// Stream canaries: an update of the planted row and a new row.
	e.prodPG.Exec(t, e.prod, fmt.Sprintf(`
		UPDATE people SET version = 2, name = '%s', token = '%s', notes = '%s',
		  profile = '{"email": "%s", "secret": "%s"}' WHERE id = 9001;
		INSERT INTO people (id, version, name, email, profile) VALUES (9002, 2, '%s', '%s', '{"email": "%s"}');`,
		c["stream-name"], c["stream-token"], c["stream-notes"], c["stream-email"], c["stream-json"],
		c["stream-name"], c["stream-email"], c["stream-email"]))
	waitFor(t, time.Minute, "the streamed canary update", sync, func() bool {
		return count(e.test, "people WHERE version = 2") == 2
	})

	code, body, err := httpGet("http://" + metricsAddr + "/healthz")
	if err != nil || code != 200 || strings.TrimSpace(body) != "ok" {
		t.Errorf("/healthz while syncing: %d %q %v", code, body, err)
	}
	_, metrics, err := httpGet("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, series := range []string{"understudy_changes_applied_total", `understudy_stage_busy_seconds_total{pipeline="leak",stage="apply"}`,
		`understudy_stage_busy_seconds_total{pipeline="leak",stage="transform"}`} {
		if !strings.Contains(metrics, series) {
			t.Errorf("/metrics lacks %s:\n%s", series, tail(metrics))
		}
	}
	if found := c.find([]byte(metrics)); len(found) > 0 {
		t.Errorf("/metrics holds canaries %v", found)
	}
	sync.stop(t, 10*time.Second)
	if code, out := e.verify(); code != 0 {
		t.Errorf("verify: exit %d\n%s", code, out)
	}

	// The target database, every table (understudy's own state included).
	dump := pgDump(t, e.testPG, e.test)
	if !strings.Contains(dump, "000-00-0000") || !strings.Contains(dump, "COPY public.people") {
		t.Fatalf("the target dump does not look like the replica (%d bytes)", len(dump))
	}
	if found := c.find([]byte(dump)); len(found) > 0 {
		t.Errorf("the target database holds canaries %v", found)
	}
	if strings.Contains(dump, "legacy_pii") {
		t.Error("the dropped column legacy_pii exists in the target")
	}

	// Every file beside the config: each command's stdout and stderr (with -v),
	// the embedded mapping store, lock files.
	var scanned []string
	err = filepath.WalkDir(e.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned = append(scanned, filepath.Base(path))
		if found := c.find(b); len(found) > 0 {
			t.Errorf("%s holds canaries %v", filepath.Base(path), found)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	logs := 0
	for _, l := range e.logs {
		if _, err := os.Stat(l); err == nil {
			logs++
		}
	}
	if logs < 4 {
		t.Errorf("only %d log files were scanned", logs)
	}
	if redisURL == "" {
		db := filepath.Join(e.dir, "understudy-mappings.db")
		var size int64
		err := filepath.WalkDir(db, func(_ string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if info, err := d.Info(); err == nil {
					size += info.Size()
				}
			}
			return err
		})
		if err != nil || size == 0 {
			t.Errorf("the embedded mapping store %s was not written (%v); the scan proves nothing", db, err)
		}
	} else {
		dumpRedis := redisBytes(t, redisURL)
		if len(dumpRedis) == 0 {
			t.Error("Redis holds no mappings; the scan proves nothing")
		}
		if found := c.find(dumpRedis); len(found) > 0 {
			t.Errorf("the Redis mapping store holds canaries %v", found)
		}
	}
	t.Logf("scanned %d files, a %d-byte target dump and /metrics", len(scanned), len(dump))
}

func pgDump(t *testing.T, pg *testenv.PostgresServer, dsn string) string {
	t.Helper()
	u, _ := url.Parse(dsn)
	cmd := exec.Command("/usr/lib/postgresql/15/bin/pg_dump", "-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", "postgres",
		strings.TrimPrefix(u.Path, "/"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump of the target: %v", err)
	}
	return string(out)
}

// redisBytes returns every key and value of the Redis database, concatenated.
func redisBytes(t *testing.T, redisURL string) []byte {
	t.Helper()
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	r := redis.NewClient(opts)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var all []byte
	iter := r.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		all = append(all, k...)
		all = append(all, '\n')
		typ, err := r.Type(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		var vals []string
		switch typ {
		case "string":
			v, err := r.Get(ctx, k).Result()
			if err != nil && err != redis.Nil {
				t.Fatal(err)
			}
			vals = []string{v}
		case "set":
			vals, err = r.SMembers(ctx, k).Result()
		case "hash":
			var m map[string]string
			m, err = r.HGetAll(ctx, k).Result()
			for f, v := range m {
				vals = append(vals, f, v)
			}
		case "list":
			vals, err = r.LRange(ctx, k, 0, -1).Result()
		case "zset":
			vals, err = r.ZRange(ctx, k, 0, -1).Result()
		default:
			t.Errorf("Redis key of type %s not scanned", typ)
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			all = append(all, v...)
			all = append(all, '\n')
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return all
}
