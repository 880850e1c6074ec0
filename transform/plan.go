package transform

import (
	"context"
	"errors"
	"fmt"
	"github.com/understudy/understudy/internal/suggest"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/mapping"
)

// Resolver fills items[i].Out with the consistent replacement of items[i].Value
// in items[i].NS and items[i].Domain, creating mappings as needed (see
// mapping.Mapper, which implements it). The Transformer calls Resolve once per
// batch with every value of the batch that needs a replacement; duplicates may
// occur and must get the same answer. On error no Out is meaningful.
type Resolver interface {
	Resolve(ctx context.Context, items []mapping.Item) error
}

// Config configures a Transformer.
type Config struct {
	// Secret keys the keyed hash and date shift (the Mapper keys mappings with
	// the same secret). Required.
	Secret []byte
	// Mapper resolves replacements. Required when any rule replaces values.
	Mapper Resolver
	// Rules maps table → column → rule.
	Rules map[string]map[string]Rule
	// Where maps table → row filter expression (see ParseFilter); rows that do
	// not match are left out of the replica.
	Where map[string]string
	// Unclassified says what happens to a column no rule names:
	//
	//   - keep (default, also when empty): the value is copied as it is. Right
	//     when the rules list the sensitive columns and everything else is safe.
	//   - null: every unnamed column except the primary key becomes NULL, so a
	//     column added in production later never leaks before someone classifies
	//     it. A column that is absent from a row stays absent.
	//   - error: Plan refuses a table in which any column has no rule (keys
	//     included), listing them all; at run time a row carrying a column that
	//     is not in the table's schema and has no rule (a new DynamoDB attribute)
	//     fails the batch.
	Unclassified Policy
	// RunID is the namespace of rules with scope "run". Required by such rules.
	RunID string
	// Now gives the time for daily scopes; time.Now when nil.
	Now func() time.Time
}

// Transformer anonymizes changes and snapshot rows by compiled per-table plans.
// It is safe for concurrent use.
type Transformer struct {
	cfg     Config
	filters map[string]*Filter

	mu    sync.RWMutex
	plans map[string]*Plan // by table name

	pool sync.Pool // of *batch

	// invalidJSON hashes text that a json rule cannot parse (see jsonValue).
	invalidJSON *keyedHash
}

// New checks cfg and returns a Transformer. Every rule is validated (see
// Validate) and every filter parsed here, so configuration problems surface at
// start-up, all at once; checks that need a table's schema happen in Plan.
func New(cfg Config) (*Transformer, error) {
	var problems []string
	if len(cfg.Secret) == 0 {
		problems = append(problems, "transform: the secret is empty; set it (from the environment) so hashes and mappings cannot be reversed by guessing")
	}
	switch cfg.Unclassified {
	case "":
		cfg.Unclassified = PolicyKeep
	case PolicyKeep, PolicyNull, PolicyError:
	default:
		problems = append(problems, fmt.Sprintf("transform: unknown unclassified policy %q; use keep, null or error", cfg.Unclassified))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for _, table := range sortedKeys(cfg.Rules) {
		for _, col := range sortedKeys(cfg.Rules[table]) {
			r := cfg.Rules[table][col]
			for _, p := range Validate(r) {
				problems = append(problems, fmt.Sprintf("transform: table %s column %s: %s", table, col, p))
			}
			if usesScope(r, mapping.Run) && cfg.RunID == "" {
				problems = append(problems, fmt.Sprintf("transform: table %s column %s: scope run needs a run id; pass one or use scope permanent/daily", table, col))
			}
			if usesAction(r, Replace) && cfg.Mapper == nil {
				problems = append(problems, fmt.Sprintf("transform: table %s column %s: replace needs a mapping store; configure one", table, col))
			}
		}
	}
	t := &Transformer{cfg: cfg, filters: map[string]*Filter{}, plans: map[string]*Plan{}}
	for _, table := range sortedKeys(cfg.Where) {
		f, err := ParseFilter(cfg.Where[table])
		if err != nil {
			problems = append(problems, fmt.Sprintf("transform: table %s where: %v", table, err))
			continue
		}
		t.filters[table] = f
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "\n"))
	}
	t.pool.New = func() any { return &batch{} }
	t.invalidJSON = newKeyedHash(cfg.Secret, hashLabel, "invalid_json")
	return t, nil
}

func usesScope(r Rule, s mapping.Scope) bool {
	if sc, _ := parseScope(r.Scope); sc == s && r.Action == Replace {
		return true
	}
	for _, pr := range r.Paths {
		if usesScope(pr, s) {
			return true
		}
	}
	return false
}

func usesAction(r Rule, a Action) bool {
	if r.Action == a && !(a == Replace && r.Generator == GenDateShift) {
		return true
	}
	for _, pr := range r.Paths {
		if usesAction(pr, a) {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Plan is one table's compiled rules: what to do with each column, in a form the
// hot path can apply without looking at rules again.
type Plan struct {
	table  cdc.Table
	sig    string
	cols   []colPlan       // columns with an action other than keep, sorted by name
	ruled  map[string]bool // every column a rule names
	known  map[string]bool // ruled ∪ schema columns
	filter *Filter
	policy Policy
}

// Table returns the schema the plan was compiled for.
func (p *Plan) Table() cdc.Table { return p.table }

// Filter returns the table's row filter, or nil when every row is kept; a
// snapshot reader may push it down with Filter.SQL.
func (p *Plan) Filter() *Filter { return p.filter }

// Dropped reports whether the plan removes column from the target (the sink
// should not create it).
func (p *Plan) Dropped(column string) bool {
	for i := range p.cols {
		if p.cols[i].name == column {
			return p.cols[i].action == Drop
		}
	}
	return false
}

// Nulled reports whether the plan can write NULL into column where production
// never has one (a null rule, or the null policy for an unnamed non-key column):
// the target must then accept NULL even though the source column is NOT NULL.
func (p *Plan) Nulled(column string) bool {
	for i := range p.cols {
		if p.cols[i].name == column {
			return p.cols[i].action == Null
		}
	}
	return p.policy == PolicyNull && !p.ruled[column] && !p.table.IsKey(column)
}

// colPlan is one column's compiled rule (also used for JSON path rules, where
// name is the path).
type colPlan struct {
	name   string
	kind   cdc.Kind
	action Action
	// replace
	gen    mapping.Generator
	domain string
	scope  mapping.Scope
	// hash
	hash *keyedHash
	// intMax bounds hashed values of an integer column (see intMax); 0 = none.
	intMax uint64
	// constant: the value converted to kind (constZero: the zero of the input's
	// type, for columns of unknown kind).
	value     any
	constZero bool
	// date_shift
	shift  *dateShifter
	entity []string // entity columns (Rule.Entity, else the table key)
	// json
	paths []pathPlan
}

// Plan compiles the rules of table t, or returns the cached plan when t's schema
// has not changed since. It fails, listing every problem with its fix, when a
// rule names a column t does not have (checked only when t lists columns;
// schemaless sources such as Kafka report none), drops, nulls or sets a constant
// on a key column, names an unknown generator, applies an action the column's
// kind cannot take, when the table's filter names an unknown column, or — with
// the error policy — when any column has no rule.
func (t *Transformer) Plan(table cdc.Table) (*Plan, error) {
	sig := schemaSig(table)
	t.mu.RLock()
	p := t.plans[table.Name]
	t.mu.RUnlock()
	if p != nil && p.sig == sig {
		return p, nil
	}
	p, err := t.compile(table, sig)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.plans[table.Name] = p
	t.mu.Unlock()
	return p, nil
}

// schemaSig identifies a schema: a plan depends on column names, kinds and keys.
func schemaSig(t cdc.Table) string {
	var b strings.Builder
	for _, c := range t.Columns {
		fmt.Fprintf(&b, "%s:%d,", c.Name, c.Kind)
	}
	b.WriteString("|")
	b.WriteString(strings.Join(t.Key, ","))
	return b.String()
}

func (t *Transformer) compile(table cdc.Table, sig string) (*Plan, error) {
	rules := t.cfg.Rules[table.Name]
	p := &Plan{
		table:  table,
		sig:    sig,
		ruled:  make(map[string]bool, len(rules)),
		known:  make(map[string]bool, len(rules)+len(table.Columns)),
		filter: t.filters[table.Name],
		policy: t.cfg.Unclassified,
	}
	var problems []string
	bad := func(col, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("table %s column %s: %s", table.Name, col, fmt.Sprintf(format, args...)))
	}
	schemaless := len(table.Columns) == 0 || table.Partial // rules may name unlisted columns
	for _, c := range table.Columns {
		p.known[c.Name] = true
	}
	for _, name := range sortedKeys(rules) {
		r := rules[name]
		p.ruled[name] = true
		p.known[name] = true
		for _, msg := range Validate(r) {
			bad(name, "%s", msg)
		}
		col, ok := table.Column(name)
		if !ok && !schemaless {
			bad(name, "no such column (the table has %s); fix the column name or remove the rule", columnList(table))
			continue
		}
		if !ok {
			col = cdc.Column{Name: name, Kind: cdc.KindUnknown}
		}
		isKey := table.IsKey(name)
		if isKey {
			switch r.Action {
			case Drop, Null, Constant:
				bad(name, "is part of the primary key; %s would make rows collide or vanish. Use replace (consistent, keeps keys unique), hash or keep", r.Action)
				continue
			}
		}
		cp, msgs := t.compileRule(table, col, name, r)
		for _, m := range msgs {
			bad(name, "%s", m)
		}
		if len(msgs) == 0 && cp.action != Keep {
			p.cols = append(p.cols, cp)
		}
	}
	if p.filter != nil && !schemaless {
		for _, c := range p.filter.Columns() {
			if _, ok := table.Column(c); !ok {
				problems = append(problems, fmt.Sprintf("table %s where: no such column %s (the table has %s); fix the filter", table.Name, c, columnList(table)))
			}
		}
	}
	if p.policy == PolicyError {
		var missing []string
		for _, c := range table.Columns {
			if !p.ruled[c.Name] {
				missing = append(missing, c.Name)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("table %s: unclassified is error and these columns have no rule: %s; add a rule for each (action: keep for columns that hold nothing sensitive) or set unclassified to keep or null",
				table.Name, strings.Join(missing, ", ")))
		}
	}
	if len(problems) > 0 {
		return nil, errors.New("transform: " + strings.Join(problems, "\n"))
	}
	return p, nil
}

func columnList(t cdc.Table) string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// compileRule checks r against the column's kind and builds its colPlan. name is
// the column (or JSON path) the rule applies to.
func (t *Transformer) compileRule(table cdc.Table, col cdc.Column, name string, r Rule) (colPlan, []string) {
	cp := colPlan{name: name, kind: col.Kind, action: r.Action}
	var msgs []string
	k := col.Kind
	switch r.Action {
	case Keep, Null, Drop:
	case Constant:
		if k == cdc.KindUnknown {
			if r.Value == nil {
				cp.constZero = true
			} else {
				cp.value = r.Value
			}
			break
		}
		v, err := constantFor(r.Value, k)
		if err != nil {
			msgs = append(msgs, err.Error())
		}
		cp.value = v
	case Hash:
		if !hashableKind(k) {
			msgs = append(msgs, fmt.Sprintf("a %s column cannot be hashed in its own format; use constant or null", k))
		}
		cp.hash = newKeyedHash(t.cfg.Secret, hashLabel, ruleDomain(r, "hash"))
		cp.intMax = intMax(col)
	case Replace:
		if r.Generator == GenDateShift {
			if !dateKind(k) {
				msgs = append(msgs, fmt.Sprintf("date_shift needs a date, timestamp or text column, not %s; use constant or null", k))
			}
			maxDays := r.MaxDays
			if maxDays == 0 {
				maxDays = 365
			}
			cp.action = dateShiftAction
			cp.shift = &dateShifter{key: newKeyedHash(t.cfg.Secret, dateShiftLabel, ruleDomain(r, GenDateShift)), maxDays: maxDays}
			if r.Entity != "" {
				cp.entity = []string{r.Entity}
				if _, ok := table.Column(r.Entity); !ok && len(table.Columns) > 0 && !table.Partial {
					msgs = append(msgs, fmt.Sprintf("date_shift entity %q is not a column (the table has %s); name the column that identifies the person or record", r.Entity, columnList(table)))
				}
			} else {
				cp.entity = table.Key
				if len(cp.entity) == 0 {
					msgs = append(msgs, "date_shift needs an entity column and the table has no key; set entity")
				}
			}
			break
		}
		g, ok := generators[r.Generator]
		if !ok {
			break // reported by Validate
		}
		if !replaceableKind(k, r.Generator) {
			msgs = append(msgs, fmt.Sprintf("generator %s cannot write a %s column; %s", r.Generator, k, kindHint(k)))
		}
		cp.gen = g
		if m := intMax(col); m != 0 {
			cp.gen = boundedGen{inner: g, max: m}
		}
		cp.domain = ruleDomain(r, r.Generator)
		cp.scope, _ = parseScope(r.Scope)
	case JSONPath:
		switch k {
		case cdc.KindJSON, cdc.KindString, cdc.KindBytes, cdc.KindUnknown:
		default:
			msgs = append(msgs, fmt.Sprintf("json rules apply to json or text columns, not %s; use a plain action", k))
		}
		for _, path := range sortedKeys(r.Paths) {
			steps, err := parsePath(path)
			if err != nil {
				continue // reported by Validate
			}
			pr := r.Paths[path]
			pc, pm := t.compileRule(table, cdc.Column{Name: name, Kind: cdc.KindUnknown}, path, pr)
			for _, m := range pm {
				msgs = append(msgs, fmt.Sprintf("path %s: %s", path, m))
			}
			cp.paths = append(cp.paths, pathPlan{steps: steps, rule: pc})
		}
	}
	return cp, msgs
}

// dateShiftAction is the internal action of a replace rule with the date_shift
// generator: it needs no mapping.
const dateShiftAction Action = "date_shift"

func ruleDomain(r Rule, def string) string {
	if r.Domain != "" {
		return r.Domain
	}
	return def
}

func parseScope(s string) (mapping.Scope, bool) {
	switch s {
	case "", string(mapping.Permanent):
		return mapping.Permanent, true
	case string(mapping.Daily):
		return mapping.Daily, true
	case string(mapping.Run):
		return mapping.Run, true
	}
	return "", false
}

func hashableKind(k cdc.Kind) bool {
	switch k {
	case cdc.KindString, cdc.KindBytes, cdc.KindUnknown, cdc.KindInt, cdc.KindUint, cdc.KindDecimal, cdc.KindArray:
		return true
	}
	return false
}

func dateKind(k cdc.Kind) bool {
	switch k {
	case cdc.KindDate, cdc.KindTimestamp, cdc.KindString, cdc.KindBytes, cdc.KindUnknown, cdc.KindArray:
		return true
	}
	return false
}

// numericGenerators keep a digits-only input digits-only, so their output parses
// back into a number of the same width.
var numericGenerators = map[string]bool{GenFormat: true, GenPhone: true, GenSSN: true, GenCreditCard: true}

func replaceableKind(k cdc.Kind, gen string) bool {
	switch k {
	case cdc.KindString, cdc.KindBytes, cdc.KindUnknown, cdc.KindArray:
		return true
	case cdc.KindInt, cdc.KindUint, cdc.KindDecimal:
		return numericGenerators[gen]
	}
	return false
}

func kindHint(k cdc.Kind) string {
	switch k {
	case cdc.KindInt, cdc.KindUint, cdc.KindDecimal:
		return "numeric columns take format, phone, ssn or credit_card (or hash)"
	case cdc.KindDate, cdc.KindTimestamp:
		return "use generator date_shift"
	}
	return "use constant, null or keep"
}

// Validate checks one rule on its own (without a schema) and returns each problem
// with its fix, e.g. `unknown generator "lastname"; use one of city, …`. It
// returns nil for a valid rule. Config calls it to report problems with file
// positions; New and Plan call it too.
func Validate(r Rule) []string {
	return validate(r, false)
}

func validate(r Rule, inPath bool) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	switch r.Action {
	case Keep, Null, Drop, Constant, Hash, Replace:
	case JSONPath:
		if inPath {
			add("json rules cannot nest inside json paths; write the nested path in full ($.a.b)")
		}
	case "":
		add("missing action; use one of %s", actionList)
	default:
		add("unknown action %q; use one of %s", r.Action, actionList)
	}
	if r.Action == Replace {
		switch {
		case r.Generator == "":
			add("replace needs a generator; use one of %s", strings.Join(GeneratorNames(), ", "))
		case r.Generator == GenDateShift:
		default:
			if _, ok := generators[r.Generator]; !ok {
				hint := ""
				if s := suggest.Closest(r.Generator, GeneratorNames()); s != "" {
					hint = fmt.Sprintf(" (did you mean %s?)", s)
				}
				add("unknown generator %q%s; use one of %s", r.Generator, hint, strings.Join(GeneratorNames(), ", "))
			}
		}
	} else if r.Generator != "" && r.Action != "" {
		add("generator %q has no effect with action %s; remove it or use action replace", r.Generator, r.Action)
	}
	if _, ok := parseScope(r.Scope); !ok {
		add("unknown scope %q; use permanent, daily or run", r.Scope)
	} else if r.Scope != "" && (r.Action != Replace || r.Generator == GenDateShift) {
		add("scope only applies to replace rules with a mapping generator; remove it")
	}
	if r.Value != nil {
		if r.Action != Constant {
			add("value only applies to action constant; remove it or use action constant")
		} else if !scalar(r.Value) {
			add("constant value must be a string, number, boolean or null, not %T", r.Value)
		}
	}
	isShift := r.Action == Replace && r.Generator == GenDateShift
	if r.Entity != "" && !isShift {
		add("entity only applies to generator date_shift; remove it")
	}
	if r.MaxDays != 0 && !isShift {
		add("max_days only applies to generator date_shift; remove it")
	}
	if r.MaxDays < 0 {
		add("max_days must be positive (days the shift may move a date either way)")
	}
	if r.Action == JSONPath {
		if len(r.Paths) == 0 {
			add("json needs paths, e.g. paths: {\"$.email\": {action: replace, generator: email}}")
		}
		for _, path := range sortedKeys(r.Paths) {
			if _, err := parsePath(path); err != nil {
				add("path %q: %v", path, err)
				continue
			}
			for _, m := range validate(r.Paths[path], true) {
				add("path %s: %s", path, m)
			}
		}
	} else if len(r.Paths) > 0 {
		add("paths only apply to action json; remove them or use action json")
	}
	return out
}

const actionList = "keep, null, constant, hash, replace, drop, json"

func scalar(v any) bool {
	switch v.(type) {
	case string, bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64,
		cdc.Decimal, cdc.Date, cdc.TimeOfDay, cdc.Interval, time.Time, []byte:
		return true
	}
	return false
}
