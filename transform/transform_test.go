package transform

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/mapping"
)

var ctx = context.Background()

var usersTable = cdc.Table{
	Name: "public.users",
	Key:  []string{"id"},
	Columns: []cdc.Column{
		{Name: "id", Kind: cdc.KindInt},
		{Name: "email", Kind: cdc.KindString},
		{Name: "name", Kind: cdc.KindString},
		{Name: "phone", Kind: cdc.KindString},
		{Name: "tenant_id", Kind: cdc.KindInt},
		{Name: "account", Kind: cdc.KindUint},
		{Name: "balance", Kind: cdc.KindDecimal},
		{Name: "token", Kind: cdc.KindBytes},
		{Name: "ref", Kind: cdc.KindString},
		{Name: "password", Kind: cdc.KindString},
		{Name: "active", Kind: cdc.KindBool},
		{Name: "internal", Kind: cdc.KindString},
		{Name: "created", Kind: cdc.KindTimestamp},
		{Name: "birth", Kind: cdc.KindDate},
		{Name: "profile", Kind: cdc.KindJSON},
		{Name: "aliases", Kind: cdc.KindArray},
		{Name: "notes", Kind: cdc.KindString},
	},
}

func usersRules() map[string]Rule {
	return map[string]Rule{
		"id":       {Action: Replace, Generator: GenFormat, Domain: "user_id"},
		"email":    {Action: Replace, Generator: GenEmail},
		"name":     {Action: Replace, Generator: GenFullName},
		"phone":    {Action: Replace, Generator: GenPhone},
		"account":  {Action: Replace, Generator: GenFormat},
		"balance":  {Action: Replace, Generator: GenFormat},
		"token":    {Action: Hash},
		"ref":      {Action: Hash},
		"password": {Action: Constant},
		"internal": {Action: Drop},
		"active":   {Action: Constant, Value: true},
		"created":  {Action: Replace, Generator: GenDateShift},
		"birth":    {Action: Replace, Generator: GenDateShift, MaxDays: 30},
		"aliases":  {Action: Replace, Generator: GenFirstName},
		"notes":    {Action: Null},
		"profile": {Action: JSONPath, Paths: map[string]Rule{
			"$.contact.email": {Action: Replace, Generator: GenEmail},
			"$.phones[*]":     {Action: Replace, Generator: GenPhone},
			"$..ssn":          {Action: Hash},
			"$.secret":        {Action: Drop},
			"$.tags[0]":       {Action: Constant, Value: "x"},
			"$.orders[*].id":  {Action: Replace, Generator: GenFormat, Domain: "order_id"},
		}},
	}
}

func newTestTransformer(t testing.TB, secret string, mod func(*Config)) (*Transformer, *fakeResolver) {
	t.Helper()
	fr := newFakeResolver()
	cfg := Config{
		Secret: []byte(secret),
		Mapper: fr,
		Rules:  map[string]map[string]Rule{usersTable.Name: usersRules()},
		Now:    func() time.Time { return time.Date(2025, 3, 4, 15, 0, 0, 0, time.UTC) },
		RunID:  "run-1",
	}
	if mod != nil {
		mod(&cfg)
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Plan(usersTable); err != nil {
		t.Fatal(err)
	}
	return tr, fr
}

func userRow(id int64) cdc.Row {
	return cdc.Row{
		"id":        id,
		"email":     "john.smith@gmail.com",
		"name":      "John Smith",
		"phone":     "+1 (415) 555-2671",
		"tenant_id": int64(1),
		"account":   uint64(123456789),
		"balance":   cdc.Decimal("-1234.50"),
		"token":     []byte("tok_ABC123"),
		"ref":       "REF-2024-0042",
		"password":  "$2b$10$abcdef",
		"active":    false,
		"internal":  "secret stuff",
		"created":   time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		"birth":     cdc.Date("1980-02-29"),
		"profile":   cdc.JSON(`{"contact":{"email":"john@corp.com","name":"John"},"orders":[{"id":1234,"total":9.50}],"phones":["+1 415 555 2671",null],"secret":"pw","ssn":"123-45-6789","tags":["vip","eu"]}`),
		"aliases":   []any{"Johnny", nil, ""},
		"notes":     "call him",
	}
}

func TestRowTransform(t *testing.T) {
	tr, fr := newTestTransformer(t, "s1", nil)
	in := userRow(1001)
	orig := userRow(1001)
	out, err := tr.Rows(ctx, usersTable.Name, []cdc.Row{in})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, orig) {
		t.Fatal("input row was modified")
	}
	if fr.calls != 1 {
		t.Fatalf("resolver called %d times, want once per batch", fr.calls)
	}
	r := out[0]
	// Kinds survive replacement.
	for col, want := range map[string]reflect.Type{
		"id": reflect.TypeOf(int64(0)), "account": reflect.TypeOf(uint64(0)), "balance": reflect.TypeOf(cdc.Decimal("")),
		"token": reflect.TypeOf([]byte(nil)), "ref": reflect.TypeOf(""), "created": reflect.TypeOf(time.Time{}),
		"birth": reflect.TypeOf(cdc.Date("")), "profile": reflect.TypeOf(cdc.JSON(nil)),
	} {
		if got := reflect.TypeOf(r[col]); got != want {
			t.Errorf("%s: type %v, want %v", col, got, want)
		}
	}
	for _, col := range []string{"id", "email", "name", "phone", "account", "balance", "token", "ref", "created", "birth"} {
		if reflect.DeepEqual(r[col], in[col]) {
			t.Errorf("%s was not changed", col)
		}
	}
	if id := r["id"].(int64); id < 1000 || id > 9999 {
		t.Errorf("format on int 1001 gave %d: width lost", id)
	}
	if b := string(r["balance"].(cdc.Decimal)); len(b) != len("-1234.50") || b[0] != '-' || b[5] != '.' {
		t.Errorf("balance %q lost its format", b)
	}
	if !sameClasses("REF-2024-0042", r["ref"].(string)) || !sameClasses("tok_ABC123", string(r["token"].([]byte))) {
		t.Errorf("hash changed the format: %q %q", r["ref"], r["token"])
	}
	if r["password"] != "" || r["active"] != true {
		t.Errorf("constants: password %q active %v", r["password"], r["active"])
	}
	if _, ok := r["internal"]; ok {
		t.Error("dropped column present")
	}
	if v, ok := r["notes"]; !ok || v != nil {
		t.Error("null rule did not give NULL")
	}
	if r["tenant_id"] != int64(1) {
		t.Error("unclassified column not kept")
	}
	al := r["aliases"].([]any)
	if al[0] == "Johnny" || al[1] != nil || al[2] != "" {
		t.Errorf("array elements: %v", al)
	}
	if in["aliases"].([]any)[0] != "Johnny" {
		t.Error("input array modified")
	}
}

func TestNullAndEmptyStay(t *testing.T) {
	tr, _ := newTestTransformer(t, "s1", nil)
	row := cdc.Row{"id": int64(5), "email": "", "name": nil, "token": []byte{}, "ref": "", "password": nil,
		"profile": nil, "created": nil, "phone": ""}
	out, err := tr.Rows(ctx, usersTable.Name, []cdc.Row{row})
	if err != nil {
		t.Fatal(err)
	}
	r := out[0]
	if r["email"] != "" || r["name"] != nil || len(r["token"].([]byte)) != 0 || r["ref"] != "" || r["password"] != nil ||
		r["profile"] != nil || r["created"] != nil || r["phone"] != "" {
		t.Fatalf("NULL/empty not preserved: %#v", r)
	}
	if _, ok := r["balance"]; ok {
		t.Fatal("absent column appeared")
	}
}

func TestDeterministicAcrossInstances(t *testing.T) {
	a, _ := newTestTransformer(t, "same", nil)
	b, _ := newTestTransformer(t, "same", nil)
	c, _ := newTestTransformer(t, "other", nil)
	rows := []cdc.Row{userRow(1), userRow(2)}
	ra, err := a.Rows(ctx, usersTable.Name, rows)
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := b.Rows(ctx, usersTable.Name, rows)
	rc, _ := c.Rows(ctx, usersTable.Name, rows)
	if !reflect.DeepEqual(ra, rb) {
		t.Fatal("two transformers with the same secret disagree")
	}
	if reflect.DeepEqual(ra[0]["ref"], rc[0]["ref"]) || reflect.DeepEqual(ra[0]["created"], rc[0]["created"]) {
		t.Fatal("a different secret gave the same keyed hash / date shift")
	}
	// The same value in another row gets the same replacement (consistency).
	if ra[0]["email"] != ra[1]["email"] {
		t.Fatal("same email, different replacements")
	}
}

func TestStreamKeysMatchAfter(t *testing.T) {
	tr, _ := newTestTransformer(t, "s1", nil)
	before := userRow(77)
	after := userRow(77)
	after["name"] = "Jane Smith"
	in := []cdc.Change{
		{Table: usersTable.Name, Op: cdc.Insert, Key: cdc.Row{"id": int64(77)}, After: userRow(77)},
		{Table: usersTable.Name, Op: cdc.Update, Key: cdc.Row{"id": int64(77)}, Before: before, After: after},
		{Table: usersTable.Name, Op: cdc.Delete, Key: cdc.Row{"id": int64(77)}, Before: before, Position: cdc.Position("p1")},
		{Table: usersTable.Name, Op: cdc.Truncate},
	}
	snap, _ := tr.Rows(ctx, usersTable.Name, []cdc.Row{userRow(77)})
	out, err := tr.Changes(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 4 {
		t.Fatalf("%d changes", len(out))
	}
	id := snap[0]["id"]
	for i, c := range out[:3] {
		if c.Key["id"] != id {
			t.Fatalf("change %d: key %v, snapshot id %v", i, c.Key["id"], id)
		}
		for _, img := range []cdc.Row{c.Before, c.After} {
			if img != nil && img["id"] != id {
				t.Fatalf("change %d: image id differs from key", i)
			}
		}
	}
	if out[1].Before["email"] != out[1].After["email"] || out[1].Before["name"] == out[1].After["name"] {
		t.Fatal("before/after replacements inconsistent")
	}
	if !reflect.DeepEqual(out[0].After, snap[0]) {
		t.Fatal("stream insert differs from snapshot row")
	}
	if string(out[2].Position) != "p1" || out[3].Op != cdc.Truncate {
		t.Fatal("position or truncate lost")
	}
	if in[1].After["name"] != "Jane Smith" || in[0].Key["id"] != int64(77) {
		t.Fatal("input changed")
	}
}

func TestUnchangedColumnsStayAbsent(t *testing.T) {
	tr, _ := newTestTransformer(t, "s1", nil)
	after := userRow(3)
	delete(after, "profile")
	out, err := tr.Changes(ctx, []cdc.Change{{Table: usersTable.Name, Op: cdc.Update, Key: cdc.Row{"id": int64(3)},
		After: after, Unchanged: []string{"profile"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := out[0].After["profile"]; ok {
		t.Fatal("unchanged TOAST column appeared in After")
	}
	if !reflect.DeepEqual(out[0].Unchanged, []string{"profile"}) {
		t.Fatal("Unchanged lost")
	}
}

func TestScopes(t *testing.T) {
	var seen []mapping.Namespace
	rec := resolverFunc(func(items []mapping.Item) {
		for i := range items {
			seen = append(seen, items[i].NS)
			items[i].Out = "r" + items[i].Value
		}
	})
	cfg := Config{Secret: []byte("s"), Mapper: rec, RunID: "file-7",
		Now: func() time.Time { return time.Date(2025, 3, 4, 23, 59, 0, 0, time.FixedZone("x", -3600)) },
		Rules: map[string]map[string]Rule{"t": {
			"a": {Action: Replace, Generator: GenFirstName},
			"b": {Action: Replace, Generator: GenFirstName, Scope: "daily"},
			"c": {Action: Replace, Generator: GenFirstName, Scope: "run"},
		}}}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Plan(cdc.Table{Name: "t", Key: []string{"a"}, Columns: []cdc.Column{{Name: "a", Kind: cdc.KindString}, {Name: "b", Kind: cdc.KindString}, {Name: "c", Kind: cdc.KindString}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Rows(ctx, "t", []cdc.Row{{"a": "x", "b": "y", "c": "z"}}); err != nil {
		t.Fatal(err)
	}
	want := []mapping.Namespace{
		{Scope: mapping.Permanent},
		{Scope: mapping.Daily, Period: "2025-03-05", Expires: time.Date(2025, 3, 7, 0, 0, 0, 0, time.UTC)},
		{Scope: mapping.Run, Period: "file-7"},
	}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("namespaces %+v, want %+v", seen, want)
	}
}

type resolverFunc func(items []mapping.Item)

func (f resolverFunc) Resolve(_ context.Context, items []mapping.Item) error { f(items); return nil }

func TestDateShift(t *testing.T) {
	tr, _ := newTestTransformer(t, "s1", func(c *Config) {
		c.Rules = map[string]map[string]Rule{"orders": {
			"placed":  {Action: Replace, Generator: GenDateShift, Entity: "customer"},
			"shipped": {Action: Replace, Generator: GenDateShift, Entity: "customer"},
			"due":     {Action: Replace, Generator: GenDateShift, Entity: "customer"},
		}}
	})
	tbl := cdc.Table{Name: "orders", Key: []string{"id"}, Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt}, {Name: "customer", Kind: cdc.KindInt},
		{Name: "placed", Kind: cdc.KindTimestamp}, {Name: "shipped", Kind: cdc.KindDate}, {Name: "due", Kind: cdc.KindString}}}
	if _, err := tr.Plan(tbl); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2024, 1, 30, 10, 0, 0, 0, time.UTC)
	rows := []cdc.Row{
		{"id": int64(1), "customer": int64(9), "placed": t0, "shipped": cdc.Date("2024-02-02"), "due": "2024-03-01 12:00:00.500"},
		{"id": int64(2), "customer": int64(9), "placed": t0.AddDate(0, 0, 10), "shipped": cdc.Date("2024-02-12"), "due": "not a date"},
	}
	out, err := tr.Rows(ctx, "orders", rows)
	if err != nil {
		t.Fatal(err)
	}
	p0 := out[0]["placed"].(time.Time)
	p1 := out[1]["placed"].(time.Time)
	if p0.Equal(t0) {
		t.Fatal("date not shifted")
	}
	if p1.Sub(p0) != 10*24*time.Hour {
		t.Fatal("interval between one entity's dates changed")
	}
	s0, _ := time.Parse("2006-01-02", string(out[0]["shipped"].(cdc.Date)))
	if d := s0.Sub(p0.Truncate(24 * time.Hour)); d != 3*24*time.Hour {
		t.Fatalf("columns of one entity shifted differently: %v", d)
	}
	due := out[0]["due"].(string)
	dt, err := time.Parse("2006-01-02 15:04:05", due[:19])
	if err != nil || len(due) != len("2024-03-01 12:00:00.500") || dt.Sub(p0) != (31*24+2)*time.Hour {
		t.Fatalf("text date %q not shifted with the entity", due)
	}
	if out[1]["due"] == "not a date" {
		t.Fatal("unparseable text copied as is")
	}
	// Shifts stay within max_days, are never zero, and go both ways.
	ds := &dateShifter{key: newKeyedHash([]byte("s1"), dateShiftLabel, "d"), maxDays: 30}
	neg, pos := 0, 0
	for i := 0; i < 1000; i++ {
		d := ds.days(fmt.Sprint(i))
		if d == 0 || d < -30 || d > 30 {
			t.Fatalf("shift %d outside [-30,30] without 0", d)
		}
		if d < 0 {
			neg++
		} else {
			pos++
		}
	}
	if neg < 400 || pos < 400 {
		t.Fatalf("shifts lopsided: %d back, %d forward", neg, pos)
	}
}

func TestJSONPaths(t *testing.T) {
	tr, _ := newTestTransformer(t, "s1", nil)
	in := userRow(1)
	out, err := tr.Rows(ctx, usersTable.Name, []cdc.Row{in, userRow(2)})
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	dec := json.NewDecoder(strings.NewReader(string(out[0]["profile"].(cdc.JSON))))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	contact := doc["contact"].(map[string]any)
	if e := contact["email"].(string); e == "john@corp.com" || !strings.Contains(e, "@example.") {
		t.Errorf("contact.email %q", e)
	}
	if contact["name"] != "John" {
		t.Error("unnamed path changed")
	}
	phones := doc["phones"].([]any)
	if phones[0] == "+1 415 555 2671" || phones[1] != nil || !sameClasses("+1 415 555 2671", phones[0].(string)) {
		t.Errorf("phones %v", phones)
	}
	if _, ok := doc["secret"]; ok {
		t.Error("dropped member present")
	}
	if s := doc["ssn"].(string); s == "123-45-6789" || !sameClasses("123-45-6789", s) {
		t.Errorf("ssn %q", s)
	}
	if tags := doc["tags"].([]any); tags[0] != "x" || tags[1] != "eu" {
		t.Errorf("tags %v", tags)
	}
	order := doc["orders"].([]any)[0].(map[string]any)
	if id, ok := order["id"].(json.Number); !ok || id == "1234" || len(id) != 4 {
		t.Errorf("orders[0].id %v: want a different 4-digit number", order["id"])
	}
	if order["total"] != json.Number("9.50") {
		t.Errorf("number text changed: %v", order["total"])
	}
	if !reflect.DeepEqual(out[0]["profile"], out[1]["profile"]) {
		t.Error("same document, different output")
	}
	if canon, _ := cdc.NormalizeJSON(out[0]["profile"].(cdc.JSON)); string(canon) != string(out[0]["profile"].(cdc.JSON)) {
		t.Error("output not canonical")
	}
}

func TestJSONInTextColumnAndInvalid(t *testing.T) {
	tr, _ := newTestTransformer(t, "s1", func(c *Config) {
		c.Rules = map[string]map[string]Rule{"t": {"doc": {Action: JSONPath, Paths: map[string]Rule{"$": {Action: Hash}}}}}
	})
	if _, err := tr.Plan(cdc.Table{Name: "t", Key: []string{"id"}, Columns: []cdc.Column{{Name: "id", Kind: cdc.KindInt}, {Name: "doc", Kind: cdc.KindString}}}); err != nil {
		t.Fatal(err)
	}
	out, err := tr.Rows(ctx, "t", []cdc.Row{{"id": int64(1), "doc": `{"b": "Secret", "a": [1, "x"]}`}, {"id": int64(2), "doc": "N/A secret"}})
	if err != nil {
		t.Fatal(err)
	}
	s := out[0]["doc"].(string)
	// Rewritten in place: key order and spacing kept, every scalar hashed.
	if !strings.HasPrefix(s, `{"b": "`) || !strings.Contains(s, `, "a": [`) || strings.Contains(s, "Secret") || strings.Contains(s, `"x"`) {
		t.Errorf("doc %s", s)
	}
	if out[1]["doc"] == "N/A secret" || !sameClasses("N/A secret", out[1]["doc"].(string)) {
		t.Errorf("invalid JSON copied: %v", out[1]["doc"])
	}
}

func TestPlanErrors(t *testing.T) {
	tbl := usersTable
	cases := []struct {
		name  string
		rules map[string]Rule
		pol   Policy
		want  []string
	}{
		{"missing column", map[string]Rule{"emial": {Action: Null}}, "", []string{"column emial: no such column"}},
		{"drop key", map[string]Rule{"id": {Action: Drop}}, "", []string{"primary key"}},
		{"null key", map[string]Rule{"id": {Action: Null}}, "", []string{"primary key"}},
		{"json on int", map[string]Rule{"tenant_id": {Action: JSONPath, Paths: map[string]Rule{"$.a": {Action: Null}}}}, "", []string{"json rules apply to json or text"}},
		{"name on int", map[string]Rule{"tenant_id": {Action: Replace, Generator: GenFirstName}}, "", []string{"cannot write a int column"}},
		{"unclassified error", map[string]Rule{"email": {Action: Keep}}, PolicyError, []string{"no rule: id, name, phone", "notes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr, err := New(Config{Secret: []byte("s"), Mapper: newFakeResolver(), Unclassified: c.pol, Rules: map[string]map[string]Rule{tbl.Name: c.rules}})
			if err != nil {
				t.Fatal(err)
			}
			_, err = tr.Plan(tbl)
			if err == nil {
				t.Fatal("Plan accepted a bad rule")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	_, err := New(Config{Secret: []byte("s"), Mapper: newFakeResolver(), Rules: map[string]map[string]Rule{"t": {"a": {Action: Replace, Generator: "lastname"}}}})
	if err == nil || !strings.Contains(err.Error(), `unknown generator "lastname" (did you mean last_name?); use one of city, credit_card`) {
		t.Fatalf("unknown generator: %v", err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		r    Rule
		want string
	}{
		{Rule{Action: "scramble"}, "unknown action"},
		{Rule{Action: Replace}, "replace needs a generator"},
		{Rule{Action: Hash, Generator: "email"}, "no effect with action hash"},
		{Rule{Action: Replace, Generator: GenEmail, Scope: "weekly"}, "unknown scope"},
		{Rule{Action: JSONPath}, "json needs paths"},
		{Rule{Action: JSONPath, Paths: map[string]Rule{"a.b": {Action: Null}}}, "must start with $"},
		{Rule{Action: JSONPath, Paths: map[string]Rule{"$.a": {Action: JSONPath}}}, "cannot nest"},
		{Rule{Action: Null, Value: 3}, "value only applies"},
		{Rule{Action: Replace, Generator: GenEmail, Entity: "x"}, "entity only applies"},
	}
	for _, c := range cases {
		got := strings.Join(Validate(c.r), "; ")
		if !strings.Contains(got, c.want) {
			t.Errorf("Validate(%+v) = %q, want %q", c.r, got, c.want)
		}
	}
	if p := Validate(Rule{Action: Replace, Generator: GenDateShift, Entity: "id", MaxDays: 10}); p != nil {
		t.Errorf("valid rule: %v", p)
	}
}

func TestUnclassifiedNull(t *testing.T) {
	tr, _ := newTestTransformer(t, "s1", func(c *Config) { c.Unclassified = PolicyNull })
	out, err := tr.Rows(ctx, usersTable.Name, []cdc.Row{userRow(1)})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := out[0]["tenant_id"]; !ok || v != nil {
		t.Fatalf("unnamed column not nulled: %v", v)
	}
	if out[0]["id"] == nil {
		t.Fatal("key nulled")
	}
}

func TestPlanRecompilesOnSchemaChange(t *testing.T) {
	tr, _ := newTestTransformer(t, "s1", nil)
	p1, _ := tr.Plan(usersTable)
	p2, _ := tr.Plan(usersTable)
	if p1 != p2 {
		t.Fatal("plan not cached")
	}
	wider := usersTable
	wider.Columns = append(append([]cdc.Column(nil), usersTable.Columns...), cdc.Column{Name: "added", Kind: cdc.KindString})
	p3, err := tr.Plan(wider)
	if err != nil || p3 == p1 {
		t.Fatal("schema change did not recompile")
	}
	if _, err := tr.Rows(ctx, "nope", nil); err == nil {
		t.Fatal("Rows without a plan accepted")
	}
}

// The mapping package's Mapper is the production Resolver.
var _ Resolver = (*mapping.Mapper)(nil)

func TestConcurrentUse(t *testing.T) {
	tr, _ := newTestTransformer(t, "s1", nil)
	want, err := tr.Rows(ctx, usersTable.Name, []cdc.Row{userRow(1), userRow(2)})
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 50; i++ {
				got, err := tr.Rows(ctx, usersTable.Name, []cdc.Row{userRow(1), userRow(2)})
				if err == nil && !reflect.DeepEqual(got, want) {
					err = fmt.Errorf("concurrent Rows disagree")
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
