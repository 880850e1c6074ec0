package transform

import (
	"encoding/json"
	"fmt"
	"github.com/understudy/understudy/internal/jsonscan"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/understudy/understudy/cdc"
)

var spliceDocs = []string{
	`{"email":"alice@corp.com","name":"Alice Real","n":12,"ok":true}`,
	`{ "z" : 1.50e+3 , "email" : "bob@corp.com" ,"a":[ 1, -0.0 ,"x\u00e9\"y", null, {"email":"deep@corp.com","n":7} ] }`,
	`{"list":[{"email":"a@x.org","k":1},{"email":"b@x.org"},{"email":null},{"email":""}],"meta":{"email":"c@x.org","tags":["t1","t2"]}}`,
	`{"a":{"b":{"c":"Secret Value","d":[10,20,30]}},"odd key":"ünïcödé","e":{}, "f":[]}`,
	`["Secret", 42, {"email":"e@x.org"}, [true, false, null]]`,
	`"just a string"`,
	`12345`,
	`{"email":{"email":"nested@x.org"},"list":[]}`,
	`{"html":"<b>&amp;</b>","ctl":"tab\there\nnew","slash":"a\/b","u":"\ud83d\ude00"}`,
	"{\n  \"email\": \"ws@x.org\",\n  \"list\": [\n    \"p1\",\n    \"p2\"\n  ]\n}\n",
}

var splicePaths = []string{"$.email", "$.a.b", "$.a.b.d[1]", "$.list[*]", "$.list[*].email", "$.list[0]", "$.list[-1]",
	"$..email", "$", "$.*", "$['odd key']", "$.meta.tags[*]", "$[2].email", "$.html", "$.ctl", "$.u", "$.n", "$.z"}

var spliceRules = map[string]Rule{
	"replace": {Action: Replace, Generator: GenFormat},
	"email":   {Action: Replace, Generator: GenEmail},
	"hash":    {Action: Hash},
	"null":    {Action: Null},
	"const":   {Action: Constant, Value: "x<y"},
	"zero":    {Action: Constant},
	"keep":    {Action: Keep},
	"drop":    {Action: Drop},
}

// transformDoc runs one json rule set over doc, through the fast path or not.
func transformDoc(t *testing.T, doc any, paths map[string]Rule, tree bool) (any, error) {
	t.Helper()
	jsonTreeOnly = tree
	defer func() { jsonTreeOnly = false }()
	tr, _ := newTestTransformer(t, "s1", func(c *Config) {
		c.Rules = map[string]map[string]Rule{"t": {"doc": {Action: JSONPath, Paths: paths}}}
	})
	if _, err := tr.Plan(cdc.Table{Name: "t", Key: []string{"id"}, Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt}, {Name: "doc", Kind: cdc.KindJSON}}}); err != nil {
		t.Fatal(err)
	}
	out, err := tr.Rows(ctx, "t", []cdc.Row{{"id": int64(1), "doc": doc}})
	if err != nil {
		return nil, err
	}
	return out[0]["doc"], nil
}

func canonical(t *testing.T, v any) string {
	t.Helper()
	var raw []byte
	switch x := v.(type) {
	case cdc.JSON:
		raw = x
	case string:
		raw = []byte(x)
	case []byte:
		raw = x
	default:
		t.Fatalf("output is %T", v)
	}
	c, err := cdc.NormalizeJSON(raw)
	if err != nil {
		t.Fatalf("output is not JSON: %s", raw)
	}
	return string(c)
}

// The fast path computes what the tree path computes, for every document, path
// and rule: the same values, errors in the same cases.
func TestJSONSpliceMatchesTree(t *testing.T) {
	for _, doc := range spliceDocs {
		for _, path := range splicePaths {
			for rname, rule := range spliceRules {
				for _, second := range []string{"", "$.list[*].email", "$..email"} {
					paths := map[string]Rule{path: rule}
					if second != "" {
						paths[second] = spliceRules["email"]
					}
					name := fmt.Sprintf("%s %s=%s +%s", doc, path, rname, second)
					fast, ferr := transformDoc(t, cdc.JSON(doc), paths, false)
					tree, terr := transformDoc(t, cdc.JSON(doc), paths, true)
					if (ferr != nil) != (terr != nil) {
						t.Fatalf("%s: fast error %v, tree error %v", name, ferr, terr)
					}
					if ferr != nil {
						continue
					}
					if f, tr := canonical(t, fast), canonical(t, tree); f != tr {
						t.Fatalf("%s:\nfast %s\ntree %s", name, f, tr)
					}
				}
			}
		}
	}
}

// Only the addressed values change: key order, spacing, number text and escapes
// of the rest stay byte for byte, and the value keeps its Go type.
func TestJSONSpliceKeepsBytes(t *testing.T) {
	doc := "{ \"z\": 1.50e+3,\n  \"email\" : \"alice@corp.com\", \"a\": [1, \"x\\u00e9\", {\"email\":\"bob@corp.com\"}], \"name\":\"Alice\" }"
	for _, in := range []any{cdc.JSON(doc), doc, []byte(doc)} {
		out, err := transformDoc(t, in, map[string]Rule{"$..email": {Action: Replace, Generator: GenEmail}, "$.name": {Action: Null}}, false)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprintf("%T", out) != fmt.Sprintf("%T", in) {
			t.Fatalf("%T in, %T out", in, out)
		}
		s := fmt.Sprintf("%s", out)
		var parsed struct {
			Email string
			A     []json.RawMessage
		}
		if err := json.Unmarshal([]byte(s), &parsed); err != nil {
			t.Fatal(err)
		}
		var inner struct{ Email string }
		json.Unmarshal(parsed.A[2], &inner)
		if parsed.Email == "alice@corp.com" || !strings.Contains(parsed.Email, "@") || inner.Email == "bob@corp.com" || inner.Email == "" {
			t.Fatalf("not replaced: %s", s)
		}
		want := strings.NewReplacer(`"alice@corp.com"`, `"`+parsed.Email+`"`, `"bob@corp.com"`, `"`+inner.Email+`"`, `"Alice"`, `null`).Replace(doc)
		if s != want {
			t.Fatalf("bytes changed beyond the rewritten values:\n got %s\nwant %s", s, want)
		}
	}
	// No rule reaches anything: the very same value.
	in := cdc.JSON(`{"b":1,  "a":"x"}`)
	out, err := transformDoc(t, in, map[string]Rule{"$.email": {Action: Replace, Generator: GenEmail}}, false)
	if err != nil || string(out.(cdc.JSON)) != string(in) {
		t.Fatalf("untouched document changed: %s %v", out, err)
	}
}

// What the splice cannot do simply goes to the tree path: invalid JSON (hashed
// whole), trailing bytes, drop rules, overlapping nodes, deep nesting.
func TestJSONSpliceFallbacks(t *testing.T) {
	email := Rule{Action: Replace, Generator: GenEmail}
	deep := strings.Repeat(`{"a":`, maxSpliceDepth+5) + `"alice@corp.com"` + strings.Repeat(`}`, maxSpliceDepth+5)
	cases := []struct {
		name, doc string
		paths     map[string]Rule
	}{
		{"invalid", `{"email":"alice@corp.com",}`, map[string]Rule{"$.email": email}},
		{"trailing", `{"email":"alice@corp.com"} x`, map[string]Rule{"$.email": email}},
		{"drop", `{"email":"alice@corp.com","n":1}`, map[string]Rule{"$.email": {Action: Drop}}},
		{"overlap", `{"email":"alice@corp.com"}`, map[string]Rule{"$.email": email, "$..email": {Action: Hash}}},
		{"deep", deep, map[string]Rule{"$..a": {Action: Hash}}},
	}
	for _, c := range cases {
		fast, ferr := transformDoc(t, cdc.JSON(c.doc), c.paths, false)
		tree, terr := transformDoc(t, cdc.JSON(c.doc), c.paths, true)
		if ferr != nil || terr != nil {
			t.Fatalf("%s: %v / %v", c.name, ferr, terr)
		}
		if fmt.Sprint(fast) != fmt.Sprint(tree) {
			t.Fatalf("%s: fast %s, tree %s", c.name, fast, tree)
		}
		if strings.Contains(fmt.Sprint(fast), "alice@corp.com") {
			t.Fatalf("%s: production value kept: %s", c.name, fast)
		}
	}
}

// The scanner accepts exactly what encoding/json accepts (it validates what it
// skips, so an invalid document never gets a partial rewrite).
func TestJSONScanValidatesLikeEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(`{}[]:,"\ 0123456789-+.eEtrufalsn/bx` + "\t\n\x01\x1f\xff")
	keep, hash := &colPlan{action: Keep}, &colPlan{action: Hash}
	cursors := [][]cursor{
		{{steps: []step{{kind: stepDescend, name: "x"}}, rule: keep}},
		// Every way into the document at once, including a negative index
		// (counted before the array is validated) and rules on containers.
		{{steps: []step{{kind: stepWild}, {kind: stepIndex, idx: -1}}, rule: hash},
			{steps: []step{{kind: stepDescend, name: "email"}}, rule: hash},
			{steps: []step{{kind: stepIndex, idx: 2}, {kind: stepField, name: "email"}}, rule: hash},
			{steps: nil, rule: keep}},
	}
	check := func(b []byte) {
		for _, cur := range cursors {
			s := jsonScan{Scanner: jsonscan.Scanner{Data: b}}
			end := s.WS(s.match(s.WS(0), cur))
			got := !s.Fail && end == len(b)
			if want := json.Valid(b); got != want {
				t.Fatalf("%q: scanner says valid=%v, encoding/json %v", b, got, want)
			}
			for _, e := range s.edits {
				if got && (e.start < 0 || e.end > len(b) || e.start >= e.end) {
					t.Fatalf("%q: edit [%d,%d) outside the document", b, e.start, e.end)
				}
			}
		}
	}
	for _, d := range spliceDocs {
		check([]byte(d))
		for range 400 {
			b := []byte(d)
			for range 1 + rng.IntN(3) {
				i := rng.IntN(len(b))
				switch rng.IntN(3) {
				case 0:
					b[i] = alphabet[rng.IntN(len(alphabet))]
				case 1:
					b = append(b[:i], b[i+1:]...)
				default:
					b = append(b[:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, b[i:]...)...)
				}
				if len(b) == 0 {
					b = []byte{'x'}
				}
			}
			check(b)
		}
	}
	for _, n := range []string{"0", "-0", "01", "-", "1.", "1.5e", "1e+5", ".5", "1E-07", "-12.30"} {
		check([]byte(n))
	}
}
