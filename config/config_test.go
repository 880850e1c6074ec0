package config

import (
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/understudy/understudy/transform"
)

const testSecret = "s3cr3t-value-0123456789abcdef"

// env returns a lookup over a fixed set of variables.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

var defaultEnv = env(map[string]string{"UNDERSTUDY_SECRET": testSecret})

// The configuration example of the README, verbatim.
const readmeExample = `secret: ${UNDERSTUDY_SECRET}          # HMAC key for mapping keys
mappings: redis://127.0.0.1:6379/0    # default: an embedded file next to the config
checkpoints: file:state.db            # default: embedded file; also redis://…
pipelines:
  - name: bank
    source: postgres://repl@prod-db:5432/bank      # mysql://…, dynamodb://…, kafka://…
    target: postgres://app@test-db:5432/bank
    tables: [public.customers, public.accounts]
    rules:
      public.customers:
        last_name: {replace: last_name, domain: surname}           # scope: permanent by default
        email:     {replace: email, domain: email, scope: daily}
        ssn:       {constant: "000-00-0000"}
        profile:
          json:
            $.email: {replace: email, domain: email}
    where:
      public.customers: tenant_id in [1, 2]
`

// parseOK parses src as dir/understudy.yaml and fails the test on any problem.
func parseOK(t *testing.T, src string, lookup func(string) (string, bool)) *Config {
	t.Helper()
	cfg, err := Parse(filepath.Join(t.TempDir(), "understudy.yaml"), []byte(src), lookup)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

// parseErr parses src as "understudy.yaml" and returns the error's text, failing
// the test when there is none.
func parseErr(t *testing.T, src string, lookup func(string) (string, bool)) string {
	t.Helper()
	_, err := Parse("understudy.yaml", []byte(src), lookup)
	if err == nil {
		t.Fatalf("Parse accepted:\n%s", src)
	}
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("error is %T, want *Error: %v", err, err)
	}
	return err.Error()
}

// wantLines checks that msg has a line for each "line:fragment" pair.
func wantLines(t *testing.T, msg string, want map[int][]string) {
	t.Helper()
	for line, frags := range want {
		prefix := "understudy.yaml:" + itoa(line) + ": "
		for _, frag := range frags {
			found := false
			for _, l := range strings.Split(msg, "\n") {
				if strings.HasPrefix(l, prefix) && strings.Contains(l, frag) {
					found = true
				}
			}
			if !found {
				t.Errorf("no line %q…%q in:\n%s", prefix, frag, msg)
			}
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestReadmeExample(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "understudy.yaml")
	cfg, err := Parse(path, []byte(readmeExample), defaultEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path:         path,
		Secret:       testSecret,
		Mappings:     "redis://127.0.0.1:6379/0",
		Checkpoints:  "file:" + filepath.Join(dir, "state.db"),
		Unclassified: transform.PolicyKeep,
		Metrics:      "127.0.0.1:9187",
		Pipelines: []Pipeline{{
			Name:   "bank",
			Source: "postgres://repl@prod-db:5432/bank",
			Target: "postgres://app@test-db:5432/bank",
			Tables: []string{"public.customers", "public.accounts"},
			Rules: map[string]map[string]transform.Rule{
				"public.customers": {
					"last_name": {Action: transform.Replace, Generator: "last_name", Domain: "surname"},
					"email":     {Action: transform.Replace, Generator: "email", Domain: "email", Scope: "daily"},
					"ssn":       {Action: transform.Constant, Value: "000-00-0000"},
					"profile": {Action: transform.JSONPath, Paths: map[string]transform.Rule{
						"$.email": {Action: transform.Replace, Generator: "email", Domain: "email"},
					}},
				},
			},
			Where:        map[string]string{"public.customers": "tenant_id in [1, 2]"},
			Unclassified: transform.PolicyKeep,
			Checkpoints:  "file:" + filepath.Join(dir, "state.db"),
			Line:         5,
		}},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
}

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "understudy.yaml")
	cfg, err := Parse(path, []byte(`
secret: ${UNDERSTUDY_SECRET}
unclassified: error
pipelines:
  - name: shop
    source: mysql://repl@prod:3306/shop
    target: mariadb://app@test/shop
    tables: [orders]
    unclassified: null
  - name: events
    source: kafka://prod-broker:9092
    target: kafka://test-broker:9092
    tables: [clicks]
    checkpoints: target
`), defaultEnv)
	if err == nil || !strings.Contains(err.Error(), "only a Postgres or MySQL target can hold checkpoints") {
		t.Fatalf("checkpoints: target on a Kafka target: got %v", err)
	}

	cfg, err = Parse(path, []byte(`
secret: ${UNDERSTUDY_SECRET}
unclassified: error
checkpoints: target
pipelines:
  - name: shop
    source: mysql://repl@prod:3306/shop
    target: mariadb://app@test/shop
    tables: [orders]
    unclassified: null
  - name: events
    source: kafka://prod-broker:9092
    target: kafka://test-broker:9092
    tables: [clicks]
    checkpoints: file:/var/lib/understudy/events.db
`), defaultEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mappings != "file:"+dir+"/understudy-mappings.db" {
		t.Errorf("Mappings = %q", cfg.Mappings)
	}
	if cfg.Metrics != DefaultMetrics || cfg.RunID != "" || cfg.Unclassified != transform.PolicyError {
		t.Errorf("top-level defaults: %+v", cfg)
	}
	shop, events := cfg.Pipelines[0], cfg.Pipelines[1]
	if shop.Unclassified != transform.PolicyNull || events.Unclassified != transform.PolicyError {
		t.Errorf("unclassified: shop %q events %q", shop.Unclassified, events.Unclassified)
	}
	if shop.Checkpoints != "target" || events.Checkpoints != "file:/var/lib/understudy/events.db" {
		t.Errorf("checkpoints: shop %q events %q", shop.Checkpoints, events.Checkpoints)
	}
	if shop.Rules == nil || shop.Where == nil {
		t.Error("Rules and Where must never be nil")
	}

	// Unset checkpoints: SQL targets keep them in their own transaction
	// (exactly-once), other targets in the embedded file next to the config.
	cfg, err = Parse(path, []byte(`
secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: shop
    source: mysql://repl@prod:3306/shop
    target: mariadb://app@test/shop
    tables: [orders]
  - name: events
    source: kafka://prod-broker:9092
    target: kafka://test-broker:9092
    tables: [clicks]
`), defaultEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Pipelines[0].Checkpoints; got != CheckpointsInTarget {
		t.Errorf("default checkpoints of a SQL target = %q, want target", got)
	}
	if got := cfg.Pipelines[1].Checkpoints; got != "file:"+filepath.Join(dir, "understudy-state.db") {
		t.Errorf("default checkpoints of a Kafka target = %q, want the file next to the config", got)
	}
}

func TestEnvExpansion(t *testing.T) {
	lookup := env(map[string]string{
		"UNDERSTUDY_SECRET": testSecret,
		"PROD_PASSWORD":     "p@ss:word",
		"EMPTY":             "",
		"TENANT":            "7",
	})
	cfg := parseOK(t, `
secret: ${UNDERSTUDY_SECRET}
mappings: ${MAPPINGS:-redis://cache:6379/1}
metrics: ${METRICS_ADDR:-127.0.0.1:9999}
run_id: run-${EMPTY:-default}
pipelines:
  - name: bank
    source: postgres://repl:${PROD_PASSWORD}@prod-db/bank
    target: postgres://app@test-db/bank
    tables: [t]
    rules:
      t:
        tenant:
          constant: ${TENANT}
        label: {constant: "${TENANT}"}
        price: {constant: 1.5}
        dollars: {constant: "$$5 and $${HOME}"}
    where:
      t: tenant_id = ${TENANT}
`, lookup)
	if cfg.Mappings != "redis://cache:6379/1" || cfg.Metrics != "127.0.0.1:9999" || cfg.RunID != "run-default" {
		t.Errorf("defaults not applied: %q %q %q", cfg.Mappings, cfg.Metrics, cfg.RunID)
	}
	pl := cfg.Pipelines[0]
	if pl.Source != "postgres://repl:p@ss:word@prod-db/bank" {
		t.Errorf("Source = %q", pl.Source)
	}
	rules := pl.Rules["t"]
	if v := rules["tenant"].Value; v != 7 {
		t.Errorf("unquoted ${TENANT} = %#v, want the number 7", v)
	}
	if v := rules["label"].Value; v != "7" {
		t.Errorf(`quoted "${TENANT}" = %#v, want the string "7"`, v)
	}
	if v := rules["price"].Value; v != 1.5 {
		t.Errorf("price = %#v", v)
	}
	if v := rules["dollars"].Value; v != "$$5 and ${HOME}" {
		t.Errorf("escapes: %#v", v)
	}
	if pl.Where["t"] != "tenant_id = 7" {
		t.Errorf("where = %q", pl.Where["t"])
	}

	// A variable's value is data, never YAML: it cannot add keys.
	injected := env(map[string]string{
		"UNDERSTUDY_SECRET": testSecret,
		"NAME":              "bank\n    tables: [evil]",
	})
	msg := parseErr(t, `
secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: ${NAME}
    source: postgres://prod/bank
    target: postgres://test/bank
    tables: [t]
`, injected)
	wantLines(t, msg, map[int][]string{4: {"pipelines[0].name: \"${NAME}\": use lowercase letters"}})

	// Unset variables: each named with its field; malformed references explained.
	msg = parseErr(t, `
secret: ${UNDERSTUDY_SECRET}
mappings: ${MAPPINGS_URL}
pipelines:
  - name: bank
    source: ${PROD_URL}
    target: postgres://test/bank${BAD
    tables: [t]
`, env(map[string]string{}))
	wantLines(t, msg, map[int][]string{
		2: {"secret: environment variable UNDERSTUDY_SECRET is not set; set UNDERSTUDY_SECRET to at least 16 random bytes, e.g. `export UNDERSTUDY_SECRET=$(openssl rand -hex 32)`"},
		3: {"mappings: environment variable MAPPINGS_URL is not set; export it, or give a default: ${MAPPINGS_URL:-value}"},
		6: {"pipelines[0].source: environment variable PROD_URL is not set"},
		7: {"pipelines[0].target: unterminated ${"},
	})
}

func TestExpand(t *testing.T) {
	lookup := env(map[string]string{"A": "a", "E": ""})
	for in, want := range map[string]string{
		"plain":       "plain",
		"${A}":        "a",
		"x${A}y${A}z": "xayaz",
		"${E}":        "",
		"${E:-d}":     "d",
		"${U:-d:-e}":  "d:-e",
		"${U:-}":      "",
		"$A $":        "$A $",
		"$${A}":       "${A}",
		"pa$$word":    "pa$$word",
	} {
		got, missing, err := expand(in, lookup)
		if err != nil || len(missing) > 0 || got != want {
			t.Errorf("expand(%q) = %q, %v, %v; want %q", in, got, missing, err, want)
		}
	}
	if _, missing, _ := expand("${U}${V:-v}${W}", lookup); !reflect.DeepEqual(missing, []string{"U", "W"}) {
		t.Errorf("missing = %v", missing)
	}
	for _, bad := range []string{"${A", "${}", "${1A}", "${A-B}"} {
		if _, _, err := expand(bad, lookup); err == nil {
			t.Errorf("expand(%q) accepted", bad)
		}
	}
}

// A file with many different problems reports all of them, each at its line.
func TestEveryProblemAtOnce(t *testing.T) {
	msg := parseErr(t, `secret: ${SHORT}
mappings: ftp://somewhere
unclassified: maybe
metrics: localhost
pipelines:
  - name: Bank!
    source: postgres://repl@prod-db:5432/bank
    target: postgres://app@prod-db/bank
    tabels: [x]
    tables: [public.customers, public.customers]
    rules:
      public.custmers:
        email: {replace: emial}
      public.customers:
        ssn: {constant: 1, hash: true}
        name: {replace: first_name, scope: weekly}
        phone: email
        card: {replace: phone, domain: phone, domain: other}
        note: {hash: {domain: notes, salt: x}}
        when: {replace: date_shift, entity: id, max_days: soon}
        blob:
          json:
            email: keep
    where:
      public.customers: tenant_id in
  - name: bank
    source: mongodb://prod/x
`, env(map[string]string{"SHORT": "tooshort"}))
	wantLines(t, msg, map[int][]string{
		1:  {"secret: is shorter than 16 bytes; set SHORT to at least 16 random bytes, e.g. `export SHORT=$(openssl rand -hex 32)`"},
		2:  {`mappings: "ftp://somewhere" is not a known store URL; use one of memory, file:PATH, redis://, rediss://, dynamodb://`},
		3:  {`unclassified: unknown policy "maybe"`},
		4:  {`metrics: "localhost" is not host:port`},
		6:  {`pipelines[0].name: "Bank!": use lowercase letters`},
		8:  {"pipelines[0].target: target equals source; understudy never writes to production"},
		9:  {"pipelines[0]: unknown field 'tabels'; did you mean 'tables'?"},
		10: {`pipelines[0].tables[1]: "public.customers" is listed twice (first at line 10)`},
		12: {"pipelines[0].rules.public.custmers: rules for public.custmers, which is not in tables; did you mean 'public.customers'?"},
		13: {`pipelines[0].rules.public.custmers.email: unknown generator "emial"`},
		15: {"pipelines[0].rules.public.customers.ssn: the rule has both constant and hash; a rule does exactly one thing"},
		16: {`pipelines[0].rules.public.customers.name.scope: unknown scope "weekly"`},
		17: {`pipelines[0].rules.public.customers.phone: unknown rule "email"; for a replacement write {replace: email}`},
		18: {"pipelines[0].rules.public.customers.card.domain: duplicate key (first at line 18)"},
		19: {"pipelines[0].rules.public.customers.note.hash: unknown field 'salt'"},
		20: {`pipelines[0].rules.public.customers.when.max_days: "soon" is not a positive whole number of days`},
		23: {"pipelines[0].rules.public.customers.blob.json.email: a JSON path starts at the document root $; write $.email"},
		25: {`pipelines[0].where.public.customers: filter: column 13: expected a list`},
		26: {"pipelines[1]: target is required", "pipelines[1]: tables is required"},
		27: {`pipelines[1].source: "mongodb://prod/x" unknown scheme "mongodb"`},
	})
	// Lines come out in file order.
	lines := strings.Split(msg, "\n")
	last := 0
	for _, l := range lines {
		m := regexp.MustCompile(`^understudy\.yaml:(\d+): `).FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line without file:line: %q", l)
		}
		n, _ := strconv.Atoi(m[1])
		if n < last {
			t.Errorf("line %d after line %d", n, last)
		}
		last = n
	}
}

func TestUnknownField(t *testing.T) {
	msg := parseErr(t, `secret: ${UNDERSTUDY_SECRET}
secert: x
colour: blue
pipelines:
  - name: bank
    source: postgres://prod/bank
    target: postgres://test/bank
    tabels: [t]
`, defaultEnv)
	wantLines(t, msg, map[int][]string{
		2: {"understudy.yaml:2: unknown field 'secert'; did you mean 'secret'?"},
		3: {"unknown field 'colour'; known fields: secret, mappings, mapping_cache, checkpoints, unclassified, metrics, run_id, pipelines"},
		5: {"pipelines[0]: tables is required"},
		8: {"pipelines[0]: unknown field 'tabels'; did you mean 'tables'?"},
	})
}

func TestTargetEqualsSource(t *testing.T) {
	for _, tc := range []struct{ source, target string }{
		{"postgres://repl@prod-db:5432/bank", "postgresql://app:pw@PROD-DB/bank"},
		{"postgres://repl@localhost/bank", "postgres://app@127.0.0.1:5432/bank?sslmode=disable"},
		{"postgres://bank@db", "postgres://other@db/bank"}, // libpq: database defaults to the user
		{"mysql://repl@prod:3306/shop", "mariadb://app@prod/shop"},
		{"kafka://broker:9092", "kafka://broker"},
		{"dynamodb://us-east-1", "dynamodb://us-east-1"},
		{"dynamodb://?region=eu-west-1", "dynamodb://?region=eu-west-1&timeout=5s"},
		{"postgres:///bank", "postgres://localhost/bank"},
		{"postgres:///bank?host=/var/run/postgresql", "postgres://app@127.0.0.1:5432/bank"},
	} {
		src := "secret: ${UNDERSTUDY_SECRET}\npipelines:\n  - name: p\n    source: " + tc.source +
			"\n    target: " + tc.target + "\n    tables: [t]\n"
		msg := parseErr(t, src, defaultEnv)
		wantLines(t, msg, map[int][]string{5: {"target equals source; understudy never writes to production"}})
	}

	// A target that is another pipeline's source is production too.
	msg := parseErr(t, `secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: a
    source: postgres://prod-a/app
    target: postgres://prod-b/app
    tables: [t]
  - name: b
    source: postgres://prod-b/app
    target: postgres://test-b/app
    tables: [t]
`, defaultEnv)
	wantLines(t, msg, map[int][]string{5: {`target equals the source of pipeline "b" (line 7)`}})

	// Different databases on one server, or different regions, are different stores.
	for _, tc := range []struct{ source, target string }{
		{"postgres://db/bank", "postgres://db/bank_test"},
		{"mysql://db:3306/shop", "mysql://db:3307/shop"},
		{"dynamodb://?region=eu-west-1", "dynamodb://?endpoint=http://127.0.0.1:8000"},
	} {
		parseOK(t, "secret: ${UNDERSTUDY_SECRET}\npipelines:\n  - name: p\n    source: "+tc.source+
			"\n    target: "+tc.target+"\n    tables: [t]\n", defaultEnv)
	}
}

func TestDuplicatePipelineNames(t *testing.T) {
	msg := parseErr(t, `secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: bank
    source: postgres://prod/bank
    target: postgres://test/bank
    tables: [t]
  - name: bank
    source: postgres://prod/bank2
    target: postgres://test/bank2
    tables: [t]
`, defaultEnv)
	wantLines(t, msg, map[int][]string{7: {`pipelines[1].name: duplicate pipeline name "bank" (first at line 3)`}})
}

func TestRuleShorthands(t *testing.T) {
	cfg := parseOK(t, `secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: p
    source: postgres://prod/db
    target: postgres://test/db
    tables: [t]
    rules:
      t:
        a: keep
        b: null
        c: ~
        d: drop
        e: hash
        f: zero
        g: {constant: null}
        h: {hash: true}
        i: {hash: {domain: account}}
        j: {constant: 0}
        k: {constant: false}
        l: {replace: date_shift, entity: customer_id, max_days: 30}
`, defaultEnv)
	want := map[string]transform.Rule{
		"a": {Action: transform.Keep},
		"b": {Action: transform.Null},
		"c": {Action: transform.Null},
		"d": {Action: transform.Drop},
		"e": {Action: transform.Hash},
		"f": {Action: transform.Constant},
		"g": {Action: transform.Null},
		"h": {Action: transform.Hash},
		"i": {Action: transform.Hash, Domain: "account"},
		"j": {Action: transform.Constant, Value: 0},
		"k": {Action: transform.Constant, Value: false},
		"l": {Action: transform.Replace, Generator: "date_shift", Entity: "customer_id", MaxDays: 30},
	}
	if got := cfg.Pipelines[0].Rules["t"]; !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	msg := parseErr(t, `secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: p
    source: postgres://prod/db
    target: postgres://test/db
    tables: [t]
    rules:
      t:
        a: kep
        b:
        c: replace
        d: {domain: x}
        e: {hash: false}
        f: {hash: true, domain: x}
        g: {constant: [1, 2]}
        h: [keep]
        i: {scope: daily, json: {$.a: keep}}
`, defaultEnv)
	wantLines(t, msg, map[int][]string{
		9:  {`a: unknown rule "kep"; did you mean 'keep'?`},
		10: {"b: the rule is empty"},
		11: {`c: "replace" needs arguments`},
		12: {"d: the rule has no action"},
		13: {"e.hash: \"false\": write hash: true"},
		14: {"f.domain: domain applies only to replace rules; write {hash: {domain: D}}"},
		15: {"g.constant: must be a single value, not a list"},
		16: {"h: a rule must be a word or a mapping, not a list"},
		17: {"i.scope: scope applies only to replace rules"},
	})
}

func TestJSONRules(t *testing.T) {
	cfg := parseOK(t, `secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: p
    source: postgres://prod/db
    target: postgres://test/db
    tables: [t]
    rules:
      t:
        doc:
          json:
            $.email: {replace: email}
            $.phones[*]: {replace: phone, domain: phone, scope: daily}
            $.notes: drop
            $.payload.ssn: {constant: "000"}
            $.tags: null
`, defaultEnv)
	want := transform.Rule{Action: transform.JSONPath, Paths: map[string]transform.Rule{
		"$.email":       {Action: transform.Replace, Generator: "email"},
		"$.phones[*]":   {Action: transform.Replace, Generator: "phone", Domain: "phone", Scope: "daily"},
		"$.notes":       {Action: transform.Drop},
		"$.payload.ssn": {Action: transform.Constant, Value: "000"},
		"$.tags":        {Action: transform.Null},
	}}
	if got := cfg.Pipelines[0].Rules["t"]["doc"]; !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	// Every path's problem at its own line, a broken path not hiding the others.
	msg := parseErr(t, `secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: p
    source: postgres://prod/db
    target: postgres://test/db
    tables: [t]
    rules:
      t:
        doc:
          json:
            $.email: {replace: emial}
            $.inner:
              json: {$.x: keep}
            $.ok: keep
            name: keep
        other:
          json: {}
`, defaultEnv)
	wantLines(t, msg, map[int][]string{
		11: {`pipelines[0].rules.t.doc.json.$.email: unknown generator "emial"`},
		13: {"pipelines[0].rules.t.doc.json.$.inner.json: json rules cannot nest inside json paths"},
		15: {"pipelines[0].rules.t.doc.json.name: a JSON path starts at the document root $; write $.name"},
		17: {"pipelines[0].rules.t.other.json: lists no paths"},
	})
}

func TestStoreURLs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "conf", "understudy.yaml")
	cfg, err := Parse(path, []byte(`secret: ${UNDERSTUDY_SECRET}
mappings: file:../maps/m.db
checkpoints: memory
pipelines:
  - name: p
    source: dynamodb://us-east-1
    target: dynamodb://localhost:8000
    tables: [t]
    checkpoints: file:///var/lib/understudy/p.db
`), defaultEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mappings != "file:"+filepath.Join(dir, "maps", "m.db") {
		t.Errorf("Mappings = %q: relative file: paths resolve against the config's directory", cfg.Mappings)
	}
	spaced, err := Parse(filepath.Join(dir, "my 100% dir", "understudy.yaml"), []byte(strings.Replace(readmeExample, "file:state.db", "file:a%20b.db", 1)), defaultEnv)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := url.Parse(spaced.Checkpoints); err != nil || u.Path != filepath.Join(dir, "my 100% dir", "a%20b.db") {
		t.Errorf("file: URL does not survive url.Parse: %q → %v, %v", spaced.Checkpoints, u, err)
	}
	if cfg.Checkpoints != "memory:" || cfg.Pipelines[0].Checkpoints != "file:/var/lib/understudy/p.db" {
		t.Errorf("checkpoints: %q, %q", cfg.Checkpoints, cfg.Pipelines[0].Checkpoints)
	}

	msg := parseErr(t, `secret: ${UNDERSTUDY_SECRET}
mappings: target
checkpoints: "file:"
pipelines:
  - name: p
    source: prod-db:5432
    target: kafka:///topic
    tables: [t]
`, defaultEnv)
	wantLines(t, msg, map[int][]string{
		2: {`mappings: "target" is not a known store URL`},
		3: {`checkpoints: "file:" names no file`},
		6: {`source: "prod-db:5432" is not a URL; write e.g. postgres://user@host:5432/db`},
		7: {`target: "kafka:///topic" names no broker`},
	})
}

func TestRedacted(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://repl:hunter2@prod:5432/bank":                  "postgres://repl:xxxxx@prod:5432/bank",
		"postgres://repl@prod/bank":                               "postgres://repl@prod/bank",
		"redis://:hunter2@cache:6379/0":                           "redis://:xxxxx@cache:6379/0",
		"postgres://prod/bank?sslmode=require&password=hunter2":   "postgres://prod/bank?sslmode=require&password=xxxxx",
		"dynamodb://us-east-1?aws_secret_access_key=hunter2&x=1":  "dynamodb://us-east-1?aws_secret_access_key=xxxxx&x=1",
		"host=prod user=repl password=hunter2 dbname=bank":        "host=prod user=repl password=xxxxx dbname=bank",
		"host=prod password='hun ter2' dbname=bank":               "host=prod password=xxxxx dbname=bank",
		"mysql://repl:hun%zzter2@prod/shop":                       "mysql://repl:xxxxx@prod/shop",
		"file:/var/lib/understudy/state.db":                       "file:/var/lib/understudy/state.db",
		"kafka://broker:9092?sasl_password=hunter2&token=hunter2": "kafka://broker:9092?sasl_password=xxxxx&token=xxxxx",
	} {
		got := Redacted(in)
		if got != want {
			t.Errorf("Redacted(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(got, "hunter2") || strings.Contains(got, "ter2") {
			t.Errorf("Redacted(%q) leaks the password: %q", in, got)
		}
	}
}

// Neither the secret nor any environment value reaches an error message, whatever
// field it lands in.
func TestErrorsNeverShowTheSecret(t *testing.T) {
	const secret = "Zq9-very-private-key-material-77"
	lookup := env(map[string]string{
		"UNDERSTUDY_SECRET": secret,
		"PROD_URL":          "postgres://repl:hunter2@prod/bank",
	})
	msg := parseErr(t, `secret: ${UNDERSTUDY_SECRET}
mappings: ${UNDERSTUDY_SECRET}
checkpoints: file:${UNDERSTUDY_SECRET}x
run_id: ${UNDERSTUDY_SECRET}!
metrics: ${UNDERSTUDY_SECRET}
unclassified: ${UNDERSTUDY_SECRET}
pipelines:
  - name: ${UNDERSTUDY_SECRET}
    source: ${PROD_URL}
    target: ${PROD_URL}
    tables: [t, "${UNDERSTUDY_SECRET}", "${UNDERSTUDY_SECRET}"]
    rules:
      t:
        a: ${UNDERSTUDY_SECRET}
        b: {replace: "${UNDERSTUDY_SECRET}"}
        c: {replace: email, domain: x, scope: "${UNDERSTUDY_SECRET}"}
        d: {constant: "${UNDERSTUDY_SECRET}", hash: true}
    where:
      t: a == "${UNDERSTUDY_SECRET}"
`, lookup)
	if strings.Contains(msg, secret) || strings.Contains(msg, "private-key") {
		t.Errorf("error shows the secret:\n%s", msg)
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("error shows an environment password:\n%s", msg)
	}
	if !strings.Contains(msg, "${UNDERSTUDY_SECRET}") {
		t.Errorf("errors should quote values as written:\n%s", msg)
	}

	// A short secret: the length problem is reported without the value.
	msg = parseErr(t, readmeExample, env(map[string]string{"UNDERSTUDY_SECRET": "tiny-secret"}))
	if strings.Contains(msg, "tiny-secret") || !strings.Contains(msg, "shorter than 16 bytes") {
		t.Errorf("short secret: %s", msg)
	}

	// A secret written into the file is refused, and not repeated.
	msg = parseErr(t, strings.Replace(readmeExample, "${UNDERSTUDY_SECRET}", "literal-secret-in-the-file-0001", 1), defaultEnv)
	if strings.Contains(msg, "literal-secret") || !strings.Contains(msg, "written into the file") {
		t.Errorf("literal secret: %s", msg)
	}
}

func TestMissingSecretAndPipelines(t *testing.T) {
	msg := parseErr(t, "mappings: \"memory:\"\n", defaultEnv)
	wantLines(t, msg, map[int][]string{1: {
		"secret: required (the key of mapping hashes); add `secret: ${UNDERSTUDY_SECRET}`",
		"pipelines: at least one pipeline is required",
	}})
}

func TestMalformedFiles(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"", "understudy.yaml: the file is empty"},
		{"# only a comment\n", "understudy.yaml: the file is empty"},
		{"secret: [unclosed\n", "understudy.yaml:2: YAML syntax: did not find expected"},
		{"secret: a\n  bad: indent\n", "understudy.yaml:2: YAML syntax: mapping values are not allowed in this context; quote a value"},
		{"a: 1\nb: 2\nc: {d: ${X}}\n", "understudy.yaml:3: YAML syntax: did not find expected ',' or '}'; inside {…} and […] quote"},
		{"mappings: memory:\n", "understudy.yaml:1: YAML syntax: mapping values are not allowed"},
		{"- a\n- b\n", "understudy.yaml:1: must be a mapping (key: value), not a list"},
		{"secret: ${UNDERSTUDY_SECRET}\n---\nsecret: b\n", "understudy.yaml:2: a second YAML document"},
		{"secret: ${UNDERSTUDY_SECRET}\n<<: {metrics: x}\n", "understudy.yaml:2: merge keys (<<) are not supported"},
		{"secret: ${UNDERSTUDY_SECRET}\npipelines: bank\n", "understudy.yaml:2: pipelines: must be a list"},
	} {
		msg := parseErr(t, tc.src, defaultEnv)
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%q:\n got %s\nwant %s", tc.src, msg, tc.want)
		}
	}
}

// Aliases let tables share rules; a file whose aliases explode is refused quickly.
func TestAliases(t *testing.T) {
	cfg := parseOK(t, `secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: p
    source: postgres://prod/db
    target: postgres://test/db
    tables: [customers, customers_archive]
    rules:
      customers: &person
        email: {replace: email}
      customers_archive: *person
`, defaultEnv)
	if got := cfg.Pipelines[0].Rules["customers_archive"]["email"]; got.Generator != "email" {
		t.Errorf("aliased rules: %+v", cfg.Pipelines[0].Rules)
	}

	bomb := "secret: ${UNDERSTUDY_SECRET}\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
	for i := 1; i < 9; i++ {
		bomb += "a" + itoa(i) + ": &a" + itoa(i) + " [" + strings.Repeat("*a"+itoa(i-1)+", ", 9) + "*a" + itoa(i-1) + "]\n"
	}
	msg := parseErr(t, bomb, defaultEnv)
	if !strings.Contains(msg, "nested aliases") {
		t.Errorf("alias bomb: %s", msg)
	}
}

func TestLoad(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml: config file not found") ||
		!strings.Contains(err.Error(), "README") {
		t.Errorf("missing file: %v", err)
	}

	path := filepath.Join(t.TempDir(), "understudy.yaml")
	if err := os.WriteFile(path, []byte(readmeExample), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("UNDERSTUDY_SECRET", testSecret)
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path != path || cfg.Secret != testSecret || cfg.Pipelines[0].Name != "bank" {
		t.Errorf("Load: %+v", cfg)
	}
}

// What a rule means is transform.Validate's to judge; its messages still land on
// the rule's line, and those about one JSON path on that path's line.
func TestRuleMeaningFromTransform(t *testing.T) {
	msg := parseErr(t, `secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: p
    source: postgres://prod/db
    target: postgres://test/db
    tables: [t]
    rules:
      t:
        a: {replace: email, entity: id}
        b: {replace: lastname}
        doc:
          json:
            $.bad[: keep
            $.ok: {replace: email, max_days: 3}
`, defaultEnv)
	wantLines(t, msg, map[int][]string{
		9:  {"pipelines[0].rules.t.a: entity"},
		10: {`pipelines[0].rules.t.b: unknown generator "lastname"`},
		13: {"pipelines[0].rules.t.doc.json.$.bad[: "},
		14: {"pipelines[0].rules.t.doc.json.$.ok: max_days"},
	})
}

// publish: adds change-event publishing to any pipeline, stands in for a target,
// and is Kafka-only and never the source's cluster.
func TestPublish(t *testing.T) {
	path := filepath.Join(t.TempDir(), "understudy.yaml")
	cfg, err := Parse(path, []byte(`
secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: bank
    source: postgres://repl@prod:5432/bank
    target: postgres://app@test:5432/bank
    publish: kafka://test-kafka:9092?prefix=understudy
    tables: [public.customers]
  - name: events-only
    source: postgres://repl@prod:5432/bank
    publish: kafka://test-kafka:9092
    tables: [public.orders]
`), defaultEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Pipelines[0].Publish; got != "kafka://test-kafka:9092?prefix=understudy" {
		t.Errorf("Publish = %q", got)
	}
	only := cfg.Pipelines[1]
	if only.Target != "" || only.Publish != "kafka://test-kafka:9092" {
		t.Errorf("publish-only pipeline: %+v", only)
	}
	// Without a SQL target, checkpoints default to the embedded file.
	if want := "file:" + filepath.Join(filepath.Dir(path), "understudy-state.db"); only.Checkpoints != want {
		t.Errorf("checkpoints = %q, want %q", only.Checkpoints, want)
	}

	_, err = Parse(path, []byte(`
secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: a
    source: postgres://repl@prod:5432/bank
    target: postgres://app@test:5432/bank
    publish: postgres://app@test:5432/events
    tables: [public.customers]
  - name: b
    source: kafka://prod-kafka:9092
    target: kafka://test-kafka:9092
    publish: kafka://prod-kafka:9092
    tables: [clicks]
  - name: c
    source: postgres://repl@prod:5432/bank
    tables: [public.customers]
`), defaultEnv)
	for _, want := range []string{
		"change events are published to Kafka only",
		"publish: names the source's Kafka cluster",
		"target is required; add target: postgres://user@test-host:5432/db (the test store understudy writes), or publish: kafka://",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

func TestMappingCache(t *testing.T) {
	base := `secret: ${UNDERSTUDY_SECRET}
pipelines:
  - name: bank
    source: postgres://prod/bank
    target: postgres://test/bank
    tables: [t]
`
	if cfg := parseOK(t, base, defaultEnv); cfg.MappingCache != 0 {
		t.Errorf("unset mapping_cache = %d, want 0 (the Mapper's default)", cfg.MappingCache)
	}
	for src, want := range map[string]int{"2000000": 2_000_000, "1_500_000": 1_500_000} {
		if cfg := parseOK(t, "mapping_cache: "+src+"\n"+base, defaultEnv); cfg.MappingCache != want {
			t.Errorf("mapping_cache: %s = %d, want %d", src, cfg.MappingCache, want)
		}
	}
	for _, bad := range []string{"lots", "10", "-5"} {
		msg := parseErr(t, "mapping_cache: "+bad+"\n"+base, defaultEnv)
		wantLines(t, msg, map[int][]string{1: {"understudy.yaml:1: mapping_cache: ", "is not a number of entries ≥ 1000"}})
	}
}
