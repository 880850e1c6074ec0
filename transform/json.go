package transform

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/understudy/understudy/cdc"
)

// JSON path rules. A path is JSONPath-like:
//
//	$                the whole document
//	$.a.b            object members ($['a'] and $["a"] too)
//	$.arr[0]         an array element (negative indices count from the end)
//	$.arr[*]         every element of an array (or every member of an object; $.a.* too)
//	$..email         every member named email at any depth
//
// A path that finds nothing in a document is ignored. A rule reaching an object or
// array applies to the whole node for null, constant and drop, and to every
// scalar leaf below it for replace, hash and date_shift.

type stepKind uint8

const (
	stepField stepKind = iota
	stepIndex
	stepWild
	stepDescend // ..name
)

type step struct {
	kind stepKind
	name string
	idx  int
}

type pathPlan struct {
	steps []step
	rule  colPlan
}

// parsePath parses a path; errors name the character offset and a fix.
func parsePath(p string) ([]step, error) {
	if !strings.HasPrefix(p, "$") {
		return nil, fmt.Errorf("must start with $ (e.g. $.email)")
	}
	var steps []step
	i := 1
	for i < len(p) {
		switch {
		case strings.HasPrefix(p[i:], ".."):
			i += 2
			name, n := pathName(p[i:])
			if n == 0 {
				return nil, fmt.Errorf("character %d: expected a member name after '..'", i+1)
			}
			steps = append(steps, step{kind: stepDescend, name: name})
			i += n
		case p[i] == '.':
			i++
			if i < len(p) && p[i] == '*' {
				steps = append(steps, step{kind: stepWild})
				i++
				continue
			}
			name, n := pathName(p[i:])
			if n == 0 {
				return nil, fmt.Errorf("character %d: expected a member name after '.'", i+1)
			}
			steps = append(steps, step{kind: stepField, name: name})
			i += n
		case p[i] == '[':
			end := strings.IndexByte(p[i:], ']')
			if end < 0 {
				return nil, fmt.Errorf("character %d: '[' without ']'", i+1)
			}
			in := strings.TrimSpace(p[i+1 : i+end])
			switch {
			case in == "*":
				steps = append(steps, step{kind: stepWild})
			case len(in) >= 2 && (in[0] == '\'' || in[0] == '"') && in[len(in)-1] == in[0]:
				steps = append(steps, step{kind: stepField, name: in[1 : len(in)-1]})
			default:
				n, err := strconv.Atoi(in)
				if err != nil {
					return nil, fmt.Errorf("character %d: expected [*], [index] or ['name'] inside brackets", i+1)
				}
				steps = append(steps, step{kind: stepIndex, idx: n})
			}
			i += end + 1
		default:
			return nil, fmt.Errorf("character %d: unexpected %q; separate members with '.' (e.g. $.address.city)", i+1, p[i])
		}
	}
	return steps, nil
}

// pathName reads a member name: anything up to the next '.' or '['.
func pathName(s string) (string, int) {
	n := 0
	for n < len(s) && s[n] != '.' && s[n] != '[' {
		n++
	}
	return s[:n], n
}

// dropped marks a node removed by a drop rule; arrays and objects are compacted
// when the document is finished, so array indices stay valid meanwhile.
type droppedT struct{}

var dropped = droppedT{}

// walk calls fn for every node the steps reach from the node at parent[key] or
// parent[idx] (parent is a map[string]any or []any).
func walk(parent any, key string, idx int, steps []step, fn func(parent any, key string, idx int)) {
	if len(steps) == 0 {
		fn(parent, key, idx)
		return
	}
	node := getNode(parent, key, idx)
	s, rest := steps[0], steps[1:]
	switch s.kind {
	case stepField:
		if m, ok := node.(map[string]any); ok {
			if _, ok := m[s.name]; ok {
				walk(m, s.name, -1, rest, fn)
			}
		}
	case stepIndex:
		if a, ok := node.([]any); ok {
			i := s.idx
			if i < 0 {
				i += len(a)
			}
			if i >= 0 && i < len(a) {
				walk(a, "", i, rest, fn)
			}
		}
	case stepWild:
		switch x := node.(type) {
		case map[string]any:
			for _, k := range sortedKeys(x) {
				walk(x, k, -1, rest, fn)
			}
		case []any:
			for i := range x {
				walk(x, "", i, rest, fn)
			}
		}
	case stepDescend:
		descend(node, s.name, rest, fn)
	}
}

// descend applies rest to every member called name at or below node.
func descend(node any, name string, rest []step, fn func(parent any, key string, idx int)) {
	switch x := node.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if k == name {
				walk(x, k, -1, rest, fn)
			}
			descend(x[k], name, rest, fn)
		}
	case []any:
		for _, v := range x {
			descend(v, name, rest, fn)
		}
	}
}

func getNode(parent any, key string, idx int) any {
	if m, ok := parent.(map[string]any); ok {
		return m[key]
	}
	return parent.([]any)[idx]
}

func setNode(parent any, key string, idx int, v any) {
	if m, ok := parent.(map[string]any); ok {
		m[key] = v
		return
	}
	parent.([]any)[idx] = v
}

// jsonDoc is a document being transformed; it is re-encoded once the batch's
// replacements are known.
type jsonDoc struct {
	out     cdc.Row // the row to write the result into
	arr     []any   // or the array (for documents inside SQL arrays)
	col     string
	idx     int
	orig    any
	root    []any // root[0] is the document, so "$" has a parent too
	dropped bool

	// The fast path (jsonsplice.go): the original bytes, the nodes to rewrite and
	// their new values; root is nil then.
	raw   []byte
	edits []jsonEdit
	slots []any
}

// jsonValue schedules the transformation of a JSON column value. A value that is
// not valid JSON (odd production data in a text column) cannot have its paths
// applied and is keyed-hashed as a whole instead: it might hold anything, and
// failing the batch would stall the replica on one row.
func (b *batch) jsonValue(c *colPlan, v any, tgt target, ent *entity) error {
	var raw []byte
	switch x := v.(type) {
	case cdc.JSON:
		raw = x
	case string:
		raw = []byte(x)
	case []byte:
		raw = x
	default:
		return fmt.Errorf("json rule on a %s value; json rules need json or text", cdc.Describe(v))
	}
	if !jsonTreeOnly {
		if ok, err := b.jsonSplice(c, v, raw, tgt, ent); ok || err != nil {
			return err
		}
	}
	doc, err := cdc.ParseJSON(raw)
	if err != nil {
		out, err := convertLike(v, b.t.invalidJSON.render(string(raw)))
		if err != nil {
			return err
		}
		tgt.set(out)
		return nil
	}
	d := &jsonDoc{out: tgt.obj, arr: tgt.arr, col: tgt.key, idx: tgt.idx, orig: v, root: []any{doc}}
	for i := range c.paths {
		pp := &c.paths[i]
		var ferr error
		walk(d.root, "", 0, pp.steps, func(parent any, key string, idx int) {
			if ferr != nil {
				return
			}
			ferr = b.jsonNode(d, &pp.rule, parent, key, idx, ent)
		})
		if ferr != nil {
			return ferr
		}
	}
	b.docs = append(b.docs, d)
	return nil
}

// jsonNode applies rule to the node at parent[key|idx].
func (b *batch) jsonNode(d *jsonDoc, rule *colPlan, parent any, key string, idx int, ent *entity) error {
	node := getNode(parent, key, idx)
	if node == dropped {
		return nil
	}
	switch rule.action {
	case Keep:
		return nil
	case Drop:
		setNode(parent, key, idx, dropped)
		d.dropped = true
		return nil
	case Null:
		setNode(parent, key, idx, nil)
		return nil
	}
	if node == nil {
		return nil // JSON null stays null
	}
	if rule.action == Constant {
		switch {
		case rule.constZero:
			setNode(parent, key, idx, zeroLike(node))
		default:
			setNode(parent, key, idx, constLike(node, rule.value))
		}
		return nil
	}
	switch x := node.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if err := b.jsonNode(d, rule, x, k, -1, ent); err != nil {
				return err
			}
		}
		return nil
	case []any:
		for i := range x {
			if err := b.jsonNode(d, rule, x, "", i, ent); err != nil {
				return err
			}
		}
		return nil
	}
	var tgt target
	if m, ok := parent.(map[string]any); ok {
		tgt = target{obj: m, key: key}
	} else {
		tgt = target{arr: parent.([]any), idx: idx}
	}
	return b.scalar(rule, node, tgt, ent)
}

// finish encodes a document after the batch's replacements were filled in: the
// original bytes with the rewritten nodes spliced in (fast path), else the tree
// re-encoded canonically.
func (d *jsonDoc) finish() error {
	var enc []byte
	var err error
	if d.root == nil {
		enc, err = d.spliced()
	} else {
		doc := d.root[0]
		if d.dropped {
			doc = compact(doc)
		}
		enc, err = cdc.MarshalJSON(doc)
	}
	if err != nil {
		return fmt.Errorf("re-encoding a json value: %w", err)
	}
	var out any
	switch d.orig.(type) {
	case string:
		out = string(enc)
	case []byte:
		out = enc
	default:
		out = cdc.JSON(enc)
	}
	if d.arr != nil {
		d.arr[d.idx] = out
	} else {
		d.out[d.col] = out
	}
	return nil
}

// compact removes dropped members and elements (a dropped root becomes null).
func compact(v any) any {
	switch x := v.(type) {
	case droppedT:
		return nil
	case map[string]any:
		for k, e := range x {
			if e == dropped {
				delete(x, k)
				continue
			}
			x[k] = compact(e)
		}
	case []any:
		out := x[:0]
		for _, e := range x {
			if e == dropped {
				continue
			}
			out = append(out, compact(e))
		}
		return out
	}
	return v
}
