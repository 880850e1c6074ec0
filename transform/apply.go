package transform

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/mapping"
)

// batch collects, across one call of Changes or Rows, every value that needs a
// replacement, so that the Resolver is called once per batch; the results are
// then written into the already-cloned rows.
type batch struct {
	t     *Transformer
	items []mapping.Item
	fills []fill
	docs  []*jsonDoc
	daily mapping.Namespace
	run   mapping.Namespace
}

// fill writes items[item].Out, converted to orig's type, into its target.
type fill struct {
	tgt  target
	orig any
	item int
}

// target is where a value goes: obj[key] (a row or JSON object) or arr[idx].
type target struct {
	obj map[string]any
	key string
	arr []any
	idx int
}

func (t target) set(v any) {
	if t.arr != nil {
		t.arr[t.idx] = v
		return
	}
	t.obj[t.key] = v
}

// entity finds the value a date_shift rule keys on: in the image being
// transformed (production values), else in the change's key, else in its other
// image (an update's After may omit an unchanged column that Before has).
type entity struct {
	rows [3]cdc.Row
}

func (e *entity) days(c *colPlan) (int, error) {
	var sb strings.Builder
	for i, col := range c.entity {
		v, ok := e.lookup(col)
		if !ok {
			return 0, fmt.Errorf("date_shift entity column %s is absent from the row image; the source must send it (MySQL: binlog_row_image=FULL)", col)
		}
		if len(c.entity) == 1 {
			return c.shift.days(cdc.Canonical(v)), nil
		}
		if i > 0 {
			sb.WriteByte(0)
		}
		sb.WriteString(cdc.Canonical(v))
	}
	return c.shift.days(sb.String()), nil
}

func (e *entity) lookup(col string) (any, bool) {
	for _, r := range e.rows {
		if v, ok := r[col]; ok {
			return v, true
		}
	}
	return nil, false
}

func (t *Transformer) getBatch() *batch {
	b := t.pool.Get().(*batch)
	b.t = t
	now := t.cfg.Now().UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	// A daily namespace expires a day after its own day ends: a grace period for
	// batches that straddle midnight and for clocks that disagree a little.
	b.daily = mapping.Namespace{Scope: mapping.Daily, Period: day.Format("2006-01-02"), Expires: day.Add(48 * time.Hour)}
	b.run = mapping.Namespace{Scope: mapping.Run, Period: t.cfg.RunID}
	return b
}

func (t *Transformer) putBatch(b *batch) {
	// Drop references to rows and documents so the pool does not keep them alive.
	clear(b.items)
	clear(b.fills)
	clear(b.docs)
	b.items, b.fills, b.docs = b.items[:0], b.fills[:0], b.docs[:0]
	t.pool.Put(b)
}

func (b *batch) namespace(s mapping.Scope) mapping.Namespace {
	switch s {
	case mapping.Daily:
		return b.daily
	case mapping.Run:
		return b.run
	}
	return mapping.Namespace{Scope: mapping.Permanent}
}

// row returns a transformed copy of src (nil stays nil); alt1 and alt2 are the
// change's other images, for date_shift entities. Production values are read
// from src, never from the copy, so the order of rules does not matter.
func (b *batch) row(p *Plan, src, alt1, alt2 cdc.Row, unchanged []string) (cdc.Row, error) {
	if src == nil {
		return nil, nil
	}
	if p.policy == PolicyKeep && len(unchanged) == 0 && !p.rulesIn(src) {
		// Nothing to rewrite: share the row. Rows are immutable once emitted
		// (cdc.Row), so sharing is safe and saves a map copy per row on tables
		// without sensitive columns, and per key image whose columns no rule names.
		return src, nil
	}
	out := src.Clone()
	for _, u := range unchanged {
		delete(out, u) // not sent by the source: must stay absent
	}
	ent := entity{rows: [3]cdc.Row{src, alt1, alt2}}
	for i := range p.cols {
		c := &p.cols[i]
		v, ok := out[c.name]
		if !ok {
			continue
		}
		switch c.action {
		case Drop:
			delete(out, c.name)
			continue
		case Null:
			out[c.name] = nil
			continue
		}
		if v == nil {
			continue // NULL stays NULL
		}
		if err := b.value(c, v, target{obj: out, key: c.name}, &ent); err != nil {
			return nil, fmt.Errorf("transform: table %s column %s (%s): %w", p.table.Name, c.name, cdc.Describe(v), err)
		}
	}
	if p.policy != PolicyKeep {
		for name := range out {
			if p.ruled[name] {
				continue
			}
			if p.policy == PolicyError && !p.known[name] {
				return nil, fmt.Errorf("transform: table %s: column %s is not in the schema and has no rule, and unclassified is error; add a rule for it", p.table.Name, name)
			}
			if p.policy == PolicyNull && !p.table.IsKey(name) {
				out[name] = nil
			}
		}
	}
	return out, nil
}

// rulesIn reports whether a rule of p names a column of r.
func (p *Plan) rulesIn(r cdc.Row) bool {
	for i := range p.cols {
		if _, ok := r[p.cols[i].name]; ok {
			return true
		}
	}
	return false
}

// value applies c to the non-NULL value v bound for tgt.
func (b *batch) value(c *colPlan, v any, tgt target, ent *entity) error {
	switch c.action {
	case Constant:
		switch {
		case c.constZero:
			tgt.set(zeroLike(v))
		case c.kind == cdc.KindUnknown:
			tgt.set(constLike(v, c.value))
		default:
			tgt.set(c.value)
		}
		return nil
	case JSONPath:
		if isEmpty(v) {
			return nil
		}
		return b.jsonValue(c, v, tgt, ent)
	}
	if arr, ok := v.([]any); ok {
		// Arrays (Postgres text[]): every element gets the rule.
		cp := append([]any(nil), arr...)
		tgt.set(cp)
		for i, e := range cp {
			if e == nil {
				continue
			}
			if err := b.value(c, e, target{arr: cp, idx: i}, ent); err != nil {
				return err
			}
		}
		return nil
	}
	return b.scalar(c, v, tgt, ent)
}

// scalar applies a replace, hash or date_shift rule to one non-NULL scalar.
func (b *batch) scalar(c *colPlan, v any, tgt target, ent *entity) error {
	switch c.action {
	case Replace:
		if isEmpty(v) {
			return nil
		}
		b.fills = append(b.fills, fill{tgt: tgt, orig: v, item: len(b.items)})
		b.items = append(b.items, mapping.Item{NS: b.namespace(c.scope), Domain: c.domain, Value: cdc.Canonical(v), Gen: c.gen})
		return nil
	case Hash:
		if isEmpty(v) {
			return nil
		}
		text := cdc.Canonical(v)
		var hashed string
		if c.intMax != 0 {
			hashed = boundedHash(c.hash, text, c.intMax)
		} else {
			hashed = c.hash.render(text)
		}
		out, err := convertLike(v, hashed)
		if err != nil {
			return err
		}
		tgt.set(out)
		return nil
	case dateShiftAction:
		if isEmpty(v) {
			return nil
		}
		days, err := ent.days(c)
		if err != nil {
			return err
		}
		out, ok := shiftValue(v, days)
		if !ok {
			switch v.(type) {
			case string, []byte:
				// Text that is not a date may hold anything: hash it rather
				// than copy it.
				out, err = convertLike(v, c.shift.key.render(cdc.Canonical(v)))
				if err != nil {
					return err
				}
			default:
				// A Date that does not parse is a zero date ("0000-00-00"):
				// it carries nothing personal, keep it.
				out = v
			}
		}
		tgt.set(out)
		return nil
	case Constant, Null, Drop, Keep, JSONPath:
		return b.value(c, v, tgt, ent)
	}
	return fmt.Errorf("unsupported action %s", c.action)
}

// resolve asks the Resolver for every collected item and writes the results.
func (b *batch) resolve(ctx context.Context) error {
	if len(b.items) > 0 {
		if b.t.cfg.Mapper == nil {
			return fmt.Errorf("transform: replace rules need a mapping store; configure one")
		}
		if err := b.t.cfg.Mapper.Resolve(ctx, b.items); err != nil {
			return fmt.Errorf("transform: resolving %d replacements: %w", len(b.items), err)
		}
		for i := range b.fills {
			f := &b.fills[i]
			out, err := convertLike(f.orig, b.items[f.item].Out)
			if err != nil {
				return fmt.Errorf("transform: domain %s: %w", b.items[f.item].Domain, err)
			}
			f.tgt.set(out)
		}
	}
	for _, d := range b.docs {
		if err := d.finish(); err != nil {
			return fmt.Errorf("transform: %w", err)
		}
	}
	return nil
}

// plan returns the compiled plan of a table, which Plan must have compiled.
func (t *Transformer) plan(table string) (*Plan, error) {
	t.mu.RLock()
	p := t.plans[table]
	t.mu.RUnlock()
	if p == nil {
		return nil, fmt.Errorf("transform: no plan for table %s; call Plan with its schema first (sources report it at Open and in Batch.Schema)", table)
	}
	return p, nil
}

// Rows transforms snapshot rows of table, whose Plan must exist. Rows that do not
// match the table's filter are left out (a snapshot that pushed the filter down
// with Filter.SQL sends none). The input rows are not modified; rows of a table
// whose plan changes nothing are shared, the others are new.
func (t *Transformer) Rows(ctx context.Context, table string, rows []cdc.Row) ([]cdc.Row, error) {
	p, err := t.plan(table)
	if err != nil {
		return nil, err
	}
	b := t.getBatch()
	defer t.putBatch(b)
	out := make([]cdc.Row, 0, len(rows))
	for _, r := range rows {
		if p.filter != nil && !p.filter.Match(r) {
			continue
		}
		nr, err := b.row(p, r, nil, nil, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, nr)
	}
	if err := b.resolve(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// Changes transforms a batch of stream changes; every table's Plan must exist.
// Key, Before and After are transformed by the same rules, so a key column's
// replacement in Key equals the one in After and an update or delete finds the
// target row. Columns listed in Unchanged stay absent. The input is not modified.
//
// Row filters are evaluated on production values, before transformation:
//
//   - insert: kept when After matches.
//   - update: Before and After match → update; only Before → a Delete of the
//     key (the row left the subset); only After → an Insert (the row entered the
//     subset; unchanged TOAST columns are taken from Before when it has them);
//     neither → dropped. Without a Before image, an update whose After matches
//     passes as an update (sinks upsert) and one whose After does not becomes a
//     Delete: deleting a row the target may not have is harmless.
//   - delete: kept when Before matches (or Key, when the filter names only key
//     columns); kept when the source sent no Before image, for the same reason.
//   - truncate: always kept.
//
// A filter column absent from every image counts as NULL.
//
// When a change that carries a Position is filtered out, its Position moves to
// the previous change of the result (or, if none, to the next one that has no
// Position), so a checkpoint taken there still covers it.
func (t *Transformer) Changes(ctx context.Context, changes []cdc.Change) ([]cdc.Change, error) {
	b := t.getBatch()
	defer t.putBatch(b)
	out := make([]cdc.Change, 0, len(changes))
	var pendingPos cdc.Position
	for i := range changes {
		c := changes[i] // a copy: the caller's change is never touched
		if c.Op != cdc.Truncate {
			p, err := t.plan(c.Table)
			if err != nil {
				return nil, err
			}
			keep := true
			if p.filter != nil {
				keep = p.filter.route(p, &c)
			}
			if !keep {
				if c.Position != nil {
					if len(out) > 0 {
						out[len(out)-1].Position = c.Position
					} else {
						pendingPos = c.Position
					}
				}
				continue
			}
			var err1, err2, err3 error
			key, before, after := c.Key, c.Before, c.After
			c.Key, err1 = b.row(p, key, after, before, nil)
			c.Before, err2 = b.row(p, before, key, after, nil)
			c.After, err3 = b.row(p, after, key, before, c.Unchanged)
			for _, err := range []error{err1, err2, err3} {
				if err != nil {
					return nil, err
				}
			}
			if c.Unchanged != nil {
				c.Unchanged = append([]string(nil), c.Unchanged...)
			}
		}
		if pendingPos != nil && c.Position == nil {
			c.Position, pendingPos = pendingPos, nil
		}
		out = append(out, c)
	}
	if err := b.resolve(ctx); err != nil {
		return nil, err
	}
	return out, nil
}
