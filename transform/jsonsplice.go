package transform

import (
	"encoding/json"
	"github.com/understudy/understudy/internal/jsonscan"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/understudy/understudy/cdc"
)

// The JSON fast path. Most JSON rules rewrite a few scalars of a document ($.email,
// $.phones[*]); decoding the whole document into maps and re-encoding it costs
// far more than the rewrite (and reorders keys). jsonSplice instead scans the
// original bytes once per path, validating as it goes, notes the byte span of
// every scalar a rule reaches, and splices the replacements in when the batch is
// resolved: everything else — key order, whitespace, number text, escapes — stays
// byte for byte. Replacement scalars are encoded exactly as cdc.MarshalJSON would.
//
// The tree path (jsonValue's decode → walk → re-encode) still handles what a splice
// cannot express simply: drop rules (removing members needs the commas fixed),
// nodes reached by more than one rule (the first rule's output would feed the
// second), invalid JSON (keyed-hashed as a whole), and documents nested deeper than
// maxSpliceDepth.
//
// One deliberate difference: an object with a duplicate member name is matched on
// every occurrence (the tree path keeps only the last one); both rewrite every
// value a consumer could read.

// jsonTreeOnly turns the fast path off (tests compare it with the tree path).
var jsonTreeOnly bool

// maxSpliceDepth bounds the scanner's recursion; deeper documents take the tree path.
const maxSpliceDepth = 512

// jsonEdit is one node to rewrite: data[start:end] under rule.
type jsonEdit struct {
	start, end int
	rule       *colPlan
	orig       any // the node's value as cdc.ParseJSON would decode it
}

// cursor is a path's remaining steps at the node being scanned.
type cursor struct {
	steps []step
	rule  *colPlan
}

// jsonScan walks one document's bytes. fail: invalid JSON or too deep; tree: a
// rule the splice does not handle.
type jsonScan struct {
	jsonscan.Scanner
	edits []jsonEdit
	stack []cursor // the cursors of every level being scanned
	tree  bool
}

// scans recycles jsonScan scratch space (edits, cursor stacks) across documents.
var scans = sync.Pool{New: func() any { return new(jsonScan) }}

// splicedDoc holds a fast-path document with room for its first edits, so a
// document with a few rewritten values costs one allocation.
type splicedDoc struct {
	jsonDoc
	editBuf [2]jsonEdit
	slotBuf [2]any
}

// jsonSplice tries the fast path for the document raw (the value v, bound for tgt).
// It returns false, having changed nothing, when the tree path must handle it.
func (b *batch) jsonSplice(c *colPlan, v any, raw []byte, tgt target, ent *entity) (bool, error) {
	s := scans.Get().(*jsonScan)
	defer func() {
		s.Data, s.edits, s.stack = nil, s.edits[:0], s.stack[:0]
		scans.Put(s)
	}()
	s.Scanner, s.tree = jsonscan.Scanner{Data: raw, MaxDepth: maxSpliceDepth}, false
	for i := range c.paths {
		s.stack = append(s.stack, cursor{steps: c.paths[i].steps, rule: &c.paths[i].rule})
	}
	// One pass over the document serves every path and validates all of it.
	end := s.WS(s.match(s.WS(0), s.stack))
	if s.Fail || s.tree || end != len(raw) {
		return false, nil
	}
	if len(s.edits) == 0 {
		return true, nil // nothing to rewrite: the copy in tgt already holds v
	}
	slices.SortStableFunc(s.edits, func(x, y jsonEdit) int { return x.start - y.start })
	for i := 1; i < len(s.edits); i++ {
		if s.edits[i].start < s.edits[i-1].end {
			return false, nil // one node under two rules, or a node inside another
		}
	}
	sd := &splicedDoc{}
	d := &sd.jsonDoc
	*d = jsonDoc{out: tgt.obj, arr: tgt.arr, col: tgt.key, idx: tgt.idx, orig: v, raw: raw}
	if len(s.edits) <= len(sd.editBuf) {
		d.edits, d.slots = sd.editBuf[:len(s.edits)], sd.slotBuf[:len(s.edits)]
	} else {
		d.edits, d.slots = make([]jsonEdit, len(s.edits)), make([]any, len(s.edits))
	}
	copy(d.edits, s.edits)
	for i := range d.edits {
		e := &d.edits[i]
		e.orig = decodeScalar(raw[e.start:e.end])
		switch e.rule.action {
		case Null:
			d.slots[i] = nil
		case Constant:
			if e.rule.constZero {
				d.slots[i] = zeroLike(e.orig)
			} else {
				d.slots[i] = constLike(e.orig, e.rule.value)
			}
		default:
			d.slots[i] = e.orig
			if err := b.scalar(e.rule, e.orig, target{arr: d.slots, idx: i}, ent); err != nil {
				return true, err
			}
		}
	}
	b.docs = append(b.docs, d)
	return true, nil
}

// spliced renders the document with every slot written over its node.
func (d *jsonDoc) spliced() ([]byte, error) {
	n := len(d.raw)
	for i := range d.edits {
		if s, ok := d.slots[i].(string); ok {
			n += len(s) + 2 - (d.edits[i].end - d.edits[i].start)
		}
	}
	out := make([]byte, 0, max(n, 0)+16)
	last := 0
	for i := range d.edits {
		e := &d.edits[i]
		out = append(out, d.raw[last:e.start]...)
		if sameScalar(d.slots[i], e.orig) {
			out = append(out, d.raw[e.start:e.end]...)
		} else {
			var err error
			if out, err = appendJSON(out, d.slots[i]); err != nil {
				return nil, err
			}
		}
		last = e.end
	}
	return append(out, d.raw[last:]...), nil
}

// match scans the value at i with the cursors cur that reached it, records the
// edits of those whose path ends here, moves the others into its members or
// elements, and returns the end of the value (all of which it validates).
func (s *jsonScan) match(i int, cur []cursor) int {
	if s.Fail || i >= len(s.Data) {
		s.Fail = true
		return len(s.Data)
	}
	deeper := false
	for _, c := range cur {
		if len(c.steps) > 0 {
			deeper = true
			break
		}
	}
	var end int
	switch c := s.Data[i]; {
	case deeper && c == '{':
		end = s.matchObject(i, cur)
	case deeper && c == '[':
		end = s.matchArray(i, cur)
	default:
		end = s.Skip(i)
	}
	if s.Fail {
		return end
	}
	for _, c := range cur {
		if len(c.steps) == 0 {
			s.node(i, end, c.rule)
		}
	}
	return end
}

// matchObject is match for an object: each member's value gets the cursors
// whose next step takes them there.
func (s *jsonScan) matchObject(i int, cur []cursor) int {
	if s.Depth++; s.Depth > maxSpliceDepth {
		s.Fail = true
		return len(s.Data)
	}
	d := s.Data
	i = s.WS(i + 1)
	if i < len(d) && d[i] == '}' {
		s.Depth--
		return i + 1
	}
	for {
		if i >= len(d) || d[i] != '"' {
			break
		}
		kend := s.Str(i)
		key := d[i:kend]
		i = s.WS(kend)
		if s.Fail || i >= len(d) || d[i] != ':' {
			break
		}
		i = s.WS(i + 1)
		base := len(s.stack)
		name := memberName(key)
		for _, c := range cur {
			if len(c.steps) == 0 {
				continue
			}
			switch st := c.steps[0]; st.kind {
			case stepField:
				if name.is(st.name) {
					s.stack = append(s.stack, cursor{c.steps[1:], c.rule})
				}
			case stepWild:
				s.stack = append(s.stack, cursor{c.steps[1:], c.rule})
			case stepDescend:
				if name.is(st.name) {
					s.stack = append(s.stack, cursor{c.steps[1:], c.rule})
				}
				s.stack = append(s.stack, c) // and deeper down
			}
		}
		if len(s.stack) > base {
			i = s.match(i, s.stack[base:])
			s.stack = s.stack[:base]
		} else {
			i = s.Skip(i)
		}
		i = s.WS(i)
		if s.Fail || i >= len(d) {
			break
		}
		if d[i] == ',' {
			i = s.WS(i + 1)
			continue
		}
		if d[i] == '}' {
			s.Depth--
			return i + 1
		}
		break
	}
	s.Fail = true
	return len(d)
}

// matchArray is match for an array.
func (s *jsonScan) matchArray(i int, cur []cursor) int {
	n := -1 // elements, counted only when a negative index needs it
	for _, c := range cur {
		if len(c.steps) > 0 && c.steps[0].kind == stepIndex && c.steps[0].idx < 0 {
			n = s.count(i)
			if s.Fail {
				return len(s.Data)
			}
			break
		}
	}
	if s.Depth++; s.Depth > maxSpliceDepth {
		s.Fail = true
		return len(s.Data)
	}
	d := s.Data
	i = s.WS(i + 1)
	if i < len(d) && d[i] == ']' {
		s.Depth--
		return i + 1
	}
	for k := 0; ; k++ {
		base := len(s.stack)
		for _, c := range cur {
			if len(c.steps) == 0 {
				continue
			}
			switch st := c.steps[0]; st.kind {
			case stepIndex:
				if st.idx == k || st.idx < 0 && n+st.idx == k {
					s.stack = append(s.stack, cursor{c.steps[1:], c.rule})
				}
			case stepWild:
				s.stack = append(s.stack, cursor{c.steps[1:], c.rule})
			case stepDescend:
				s.stack = append(s.stack, c)
			}
		}
		if len(s.stack) > base {
			i = s.match(i, s.stack[base:])
			s.stack = s.stack[:base]
		} else {
			i = s.Skip(i)
		}
		i = s.WS(i)
		if s.Fail || i >= len(d) {
			break
		}
		if d[i] == ',' {
			i = s.WS(i + 1)
			continue
		}
		if d[i] == ']' {
			s.Depth--
			return i + 1
		}
		break
	}
	s.Fail = true
	return len(d)
}

// count returns the number of elements of the array at i.
func (s *jsonScan) count(i int) int {
	n := 0
	s.elements(i, func(_, v int) int { n++; return s.Skip(v) })
	return n
}

// node records the edits of rule at the node data[start:end], as jsonNode does
// on the tree.
func (s *jsonScan) node(start, end int, rule *colPlan) {
	switch rule.action {
	case Keep:
		return
	case Drop:
		s.tree = true
		return
	case Null:
		s.edits = append(s.edits, jsonEdit{start: start, end: end, rule: rule})
		return
	}
	switch s.Data[start] {
	case 'n':
		return // JSON null stays null
	case '{', '[':
		if rule.action == Constant {
			break
		}
		// replace, hash, date_shift: every scalar leaf below.
		each := func(v int) int {
			e := s.Skip(v)
			s.node(v, e, rule)
			return e
		}
		if s.Data[start] == '{' {
			s.members(start, each)
		} else {
			s.elements(start, func(_, v int) int { return each(v) })
		}
		return
	}
	s.edits = append(s.edits, jsonEdit{start: start, end: end, rule: rule})
}

// memberKey is a member name as scanned (raw, with its quotes), decoded at most
// once and only when it has escapes or non-ASCII bytes.
type memberKey struct {
	raw     []byte
	plain   bool
	decoded string
	done    bool
}

func memberName(raw []byte) memberKey {
	return memberKey{raw: raw, plain: plainString(raw[1 : len(raw)-1])}
}

// is compares the member name with name.
func (k *memberKey) is(name string) bool {
	if k.plain {
		return string(k.raw[1:len(k.raw)-1]) == name
	}
	if !k.done {
		k.done, k.decoded = true, decodeKey(k.raw)
	}
	return k.decoded == name
}

// decodeKey decodes a member name with escapes or non-ASCII bytes as
// encoding/json does (invalid UTF-8 becomes U+FFFD).
func decodeKey(raw []byte) string {
	var k string
	_ = json.Unmarshal(raw, &k) // the scan validated it
	return k
}

// members calls fn(valueStart) for each member of the object at i; fn returns
// the value's end. It returns the object's end. It serves node and
// count; matchObject and skip are the validating loops.
func (s *jsonScan) members(i int, fn func(v int) int) int {
	d := s.Data
	i = s.WS(i + 1)
	if i < len(d) && d[i] == '}' {
		return i + 1
	}
	for !s.Fail && i < len(d) && d[i] == '"' {
		i = s.WS(s.Str(i))
		if s.Fail || i >= len(d) || d[i] != ':' {
			break
		}
		i = s.WS(fn(s.WS(i + 1)))
		if s.Fail || i >= len(d) {
			break
		}
		switch d[i] {
		case '}':
			return i + 1
		case ',':
			i = s.WS(i + 1)
			continue
		}
		break
	}
	s.Fail = true
	return len(d)
}

// elements calls fn(index, valueStart) for each element of the array at i.
func (s *jsonScan) elements(i int, fn func(n, v int) int) int {
	d := s.Data
	i = s.WS(i + 1)
	if i < len(d) && d[i] == ']' {
		return i + 1
	}
	for n := 0; !s.Fail; n++ {
		i = s.WS(fn(n, i))
		if s.Fail || i >= len(d) {
			break
		}
		switch d[i] {
		case ']':
			return i + 1
		case ',':
			i = s.WS(i + 1)
			continue
		}
		break
	}
	s.Fail = true
	return len(d)
}

// plainString reports whether a string's content (between the quotes) decodes to
// itself: no escapes, valid UTF-8.
func plainString(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return false
		}
		if c >= utf8.RuneSelf {
			return utf8.Valid(b)
		}
	}
	return true
}

// decodeScalar returns the node's value as cdc.ParseJSON decodes it; objects and
// arrays give an empty map or slice (only their type matters to zeroLike and
// constLike).
func decodeScalar(b []byte) any {
	switch b[0] {
	case '"':
		if inner := b[1 : len(b)-1]; plainString(inner) {
			return string(inner)
		}
		var s string
		_ = json.Unmarshal(b, &s) // validated by the scan
		return s
	case 't':
		return true
	case 'f':
		return false
	case 'n':
		return nil
	case '{':
		return map[string]any{}
	case '[':
		return []any{}
	}
	return json.Number(b)
}

// sameScalar reports whether a slot still holds the node's own value, so its
// original bytes can stay.
func sameScalar(v, orig any) bool {
	switch x := v.(type) {
	case nil:
		return orig == nil
	case string:
		o, ok := orig.(string)
		return ok && o == x
	case json.Number:
		o, ok := orig.(json.Number)
		return ok && o == x
	case bool:
		o, ok := orig.(bool)
		return ok && o == x
	}
	return false
}

// appendJSON appends v encoded as cdc.MarshalJSON encodes it, without its
// allocations for the common cases.
func appendJSON(out []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(out, "null"...), nil
	case bool:
		if x {
			return append(out, "true"...), nil
		}
		return append(out, "false"...), nil
	case string:
		if printableASCII(x) {
			out = append(out, '"')
			out = append(out, x...)
			return append(out, '"'), nil
		}
	case json.Number:
		if end, ok := jsonscan.NumberEnd([]byte(x), 0); ok && end == len(x) {
			return append(out, x...), nil
		}
	}
	enc, err := cdc.MarshalJSON(v)
	if err != nil {
		return nil, err
	}
	return append(out, enc...), nil
}

// printableASCII: encoding/json writes such a string between quotes unchanged.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
