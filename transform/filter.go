package transform

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/understudy/understudy/cdc"
)

// Filter is a parsed row filter for tenant subsetting, e.g.
//
//	tenant_id in [1, 2] and (region = 'eu' or vip = true)
//
// Grammar: comparisons `col = lit`, `col != lit` (also `<>`), `col in [lit, …]`,
// `col not in [lit, …]` (lists in [] or ()), combined with and, or, not and
// parentheses; and binds tighter than or. Literals: integers, 'quoted' or
// "quoted" strings, true, false, null. Identifiers are letters, digits, _ and .,
// or `back-quoted`. Keywords are case-insensitive.
//
// Values compare by cdc.Canonical, so int64(1) matches 1 and '1'. NULL equals
// only null: `col = null` is IS NULL, and `col != 1` is true for a NULL col (IS
// DISTINCT FROM) — SQL renders the same semantics so that a pushed-down snapshot
// and the stream select the same rows.
type Filter struct {
	root node
	cols []string
}

type nodeKind uint8

const (
	nodeAnd nodeKind = iota
	nodeOr
	nodeNot
	nodeIn // = is in with one value; != is not-in with one value
)

type node struct {
	kind  nodeKind
	kids  []node
	col   string
	neg   bool  // not in / !=
	vals  []lit // for nodeIn
	equal bool  // written as = or != (for SQL rendering)
}

type lit struct {
	null bool
	text string // canonical text
	val  any    // int64, string or bool, for SQL arguments
}

// ParseFilter parses expr. Errors name the character offset (1-based) and a
// hint, e.g. `column 14: expected a value after "in" …`.
func ParseFilter(expr string) (*Filter, error) {
	p := &parser{src: expr}
	if err := p.lex(); err != nil {
		return nil, err
	}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errorf(t, "unexpected %s; combine conditions with and/or", t.desc())
	}
	f := &Filter{root: n}
	seen := map[string]bool{}
	collectCols(n, seen)
	for c := range seen {
		f.cols = append(f.cols, c)
	}
	sort.Strings(f.cols)
	return f, nil
}

func collectCols(n node, seen map[string]bool) {
	if n.kind == nodeIn {
		seen[n.col] = true
	}
	for _, k := range n.kids {
		collectCols(k, seen)
	}
}

// Columns returns the columns the filter reads, sorted.
func (f *Filter) Columns() []string { return append([]string(nil), f.cols...) }

// Match reports whether row satisfies the filter. A column absent from row counts
// as NULL.
func (f *Filter) Match(row cdc.Row) bool { return f.root.match(row) }

func (n *node) match(row cdc.Row) bool {
	switch n.kind {
	case nodeAnd:
		for i := range n.kids {
			if !n.kids[i].match(row) {
				return false
			}
		}
		return true
	case nodeOr:
		for i := range n.kids {
			if n.kids[i].match(row) {
				return true
			}
		}
		return false
	case nodeNot:
		return !n.kids[0].match(row)
	}
	v := row[n.col]
	in := false
	if v == nil {
		for _, l := range n.vals {
			if l.null {
				in = true
				break
			}
		}
	} else {
		text := cdc.Canonical(v)
		for _, l := range n.vals {
			if !l.null && l.text == text {
				in = true
				break
			}
		}
	}
	return in != n.neg
}

// SQL renders the filter as a WHERE condition for snapshot pushdown, quoting
// column names with quoteIdent and writing the i-th argument (1-based) with
// placeholder ($1 or ?). Arguments are int64, string or bool; NULL comparisons
// render as IS NULL without an argument.
func (f *Filter) SQL(quoteIdent func(string) string, placeholder func(i int) string) (string, []any) {
	var b strings.Builder
	var args []any
	f.root.sql(&b, &args, quoteIdent, placeholder)
	return b.String(), args
}

func (n *node) sql(b *strings.Builder, args *[]any, q func(string) string, ph func(int) string) {
	switch n.kind {
	case nodeAnd, nodeOr:
		sep := " AND "
		if n.kind == nodeOr {
			sep = " OR "
		}
		b.WriteByte('(')
		for i := range n.kids {
			if i > 0 {
				b.WriteString(sep)
			}
			n.kids[i].sql(b, args, q, ph)
		}
		b.WriteByte(')')
		return
	case nodeNot:
		b.WriteString("NOT ")
		n.kids[0].sql(b, args, q, ph)
		return
	}
	col := q(n.col)
	var vals []lit
	hasNull := false
	for _, l := range n.vals {
		if l.null {
			hasNull = true
		} else {
			vals = append(vals, l)
		}
	}
	var parts []string
	if len(vals) > 0 {
		var s strings.Builder
		s.WriteString(col)
		if len(vals) == 1 {
			s.WriteString(map[bool]string{false: " = ", true: " <> "}[n.neg])
		} else {
			s.WriteString(map[bool]string{false: " IN (", true: " NOT IN ("}[n.neg])
		}
		for i, l := range vals {
			if i > 0 {
				s.WriteString(", ")
			}
			*args = append(*args, l.val)
			s.WriteString(ph(len(*args)))
		}
		if len(vals) > 1 {
			s.WriteByte(')')
		}
		parts = append(parts, s.String())
	}
	// NULL is a value like any other here, as in Match:
	//   in [a, null]      → col IN (a) OR col IS NULL
	//   not in [a]        → col NOT IN (a) OR col IS NULL
	//   not in [a, null]  → col NOT IN (a) AND col IS NOT NULL
	switch {
	case !n.neg && hasNull:
		parts = append(parts, col+" IS NULL")
	case n.neg && hasNull:
		parts = append(parts, col+" IS NOT NULL")
	case n.neg:
		parts = append(parts, col+" IS NULL")
	}
	sep := " OR "
	if n.neg && hasNull {
		sep = " AND "
	}
	writeJoined(b, parts, sep)
}

func writeJoined(b *strings.Builder, parts []string, sep string) {
	if len(parts) == 1 {
		b.WriteString(parts[0])
		return
	}
	b.WriteByte('(')
	b.WriteString(strings.Join(parts, sep))
	b.WriteByte(')')
}

// onlyKeys reports whether every filter column is a key column of t.
func (f *Filter) onlyKeys(t *cdc.Table) bool {
	for _, c := range f.cols {
		if !t.IsKey(c) {
			return false
		}
	}
	return len(t.Key) > 0
}

// route applies the filter to a change (see Changes for the semantics), possibly
// rewriting its Op and images. It reports whether the change is kept. It never
// modifies the maps c points to; it may point c at new ones.
func (f *Filter) route(p *Plan, c *cdc.Change) bool {
	// image returns row with absent filter columns taken from the fallbacks.
	image := func(row cdc.Row, fallbacks ...cdc.Row) cdc.Row {
		var filled cdc.Row
		for _, col := range f.cols {
			if _, ok := row[col]; ok {
				continue
			}
			for _, fb := range fallbacks {
				if v, ok := fb[col]; ok {
					if filled == nil {
						filled = row.Clone()
						if filled == nil {
							filled = cdc.Row{}
						}
					}
					filled[col] = v
					break
				}
			}
		}
		if filled != nil {
			return filled
		}
		return row
	}
	switch c.Op {
	case cdc.Insert:
		return f.Match(image(c.After, c.Key))
	case cdc.Delete:
		switch {
		case c.Before != nil:
			return f.Match(image(c.Before, c.Key))
		case f.onlyKeys(&p.table):
			return f.Match(c.Key)
		}
		return true
	case cdc.Update:
		after := f.Match(image(c.After, c.Before, c.Key))
		if c.Before == nil && !f.onlyKeys(&p.table) {
			if after {
				return true
			}
			toDelete(c)
			return true
		}
		var before bool
		if c.Before != nil {
			before = f.Match(image(c.Before, c.Key))
		} else {
			before = f.Match(c.Key)
		}
		switch {
		case before && after:
			return true
		case before:
			toDelete(c)
			return true
		case after:
			// The row enters the subset: the target never had it, so insert it
			// whole, recovering unchanged (TOAST) columns from Before if it has them.
			c.Op = cdc.Insert
			if len(c.Unchanged) > 0 && c.Before != nil {
				a := c.After.Clone()
				var still []string
				for _, u := range c.Unchanged {
					if v, ok := c.Before[u]; ok {
						a[u] = v
					} else {
						still = append(still, u)
					}
				}
				c.After, c.Unchanged = a, still
			}
			return true
		}
		return false
	}
	return true
}

func toDelete(c *cdc.Change) {
	c.Op = cdc.Delete
	c.After = nil
	c.Unchanged = nil
}

// The parser: a tokenizer and a recursive-descent parser over it.

type tokKind uint8

const (
	tEOF tokKind = iota
	tIdent
	tNumber
	tString
	tLParen
	tRParen
	tLBrack
	tRBrack
	tComma
	tEq
	tNe
)

type token struct {
	kind tokKind
	text string // identifier (lower-cased for keyword checks in kw), number, or string content
	pos  int    // 0-based byte offset
}

func (t token) desc() string {
	switch t.kind {
	case tEOF:
		return "end of filter"
	case tString:
		return "a string"
	case tNumber:
		return "number " + t.text
	}
	return strconv.Quote(t.text)
}

type parser struct {
	src  string
	toks []token
	i    int
}

func (p *parser) errorf(t token, format string, args ...any) error {
	return fmt.Errorf("filter: column %d: %s", t.pos+1, fmt.Sprintf(format, args...))
}

func (p *parser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == '[' || c == ']' || c == ',':
			k := map[byte]tokKind{'(': tLParen, ')': tRParen, '[': tLBrack, ']': tRBrack, ',': tComma}[c]
			p.toks = append(p.toks, token{kind: k, text: string(c), pos: i})
			i++
		case c == '=':
			n := 1
			if i+1 < len(s) && s[i+1] == '=' {
				n = 2
			}
			p.toks = append(p.toks, token{kind: tEq, text: s[i : i+n], pos: i})
			i += n
		case c == '!' || c == '<':
			if i+1 < len(s) && (c == '!' && s[i+1] == '=' || c == '<' && s[i+1] == '>') {
				p.toks = append(p.toks, token{kind: tNe, text: s[i : i+2], pos: i})
				i += 2
				continue
			}
			return fmt.Errorf("filter: column %d: unexpected %q; comparisons are =, !=, in and not in", i+1, c)
		case c == '\'' || c == '"':
			j := i + 1
			var b strings.Builder
			for ; j < len(s); j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
					b.WriteByte(s[j])
					continue
				}
				if s[j] == c {
					break
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return fmt.Errorf("filter: column %d: unterminated string; close it with %c", i+1, c)
			}
			p.toks = append(p.toks, token{kind: tString, text: b.String(), pos: i})
			i = j + 1
		case c == '`':
			j := strings.IndexByte(s[i+1:], '`')
			if j < 0 {
				return fmt.Errorf("filter: column %d: unterminated `identifier`", i+1)
			}
			p.toks = append(p.toks, token{kind: tIdent, text: s[i+1 : i+1+j], pos: i})
			i += j + 2
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			if j == i+1 && c == '-' {
				return fmt.Errorf("filter: column %d: '-' must start a number", i+1)
			}
			if j < len(s) && (s[j] == '.' || s[j] == 'e' || s[j] == 'E') {
				return fmt.Errorf("filter: column %d: only integer numbers are supported; quote other values as strings", i+1)
			}
			p.toks = append(p.toks, token{kind: tNumber, text: s[i:j], pos: i})
			i = j
		case c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i + 1
			for j < len(s) && (s[j] == '_' || s[j] == '.' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			p.toks = append(p.toks, token{kind: tIdent, text: s[i:j], pos: i})
			i = j
		default:
			return fmt.Errorf("filter: column %d: unexpected %q; quote string values ('eu')", i+1, c)
		}
	}
	p.toks = append(p.toks, token{kind: tEOF, pos: len(s)})
	return nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if p.i < len(p.toks)-1 { // stay on EOF
		p.i++
	}
	return t
}

// kw reports whether t is the keyword k.
func kw(t token, k string) bool { return t.kind == tIdent && strings.EqualFold(t.text, k) }

func (p *parser) or() (node, error) {
	n, err := p.and()
	if err != nil {
		return n, err
	}
	kids := []node{n}
	for kw(p.peek(), "or") {
		p.next()
		m, err := p.and()
		if err != nil {
			return m, err
		}
		kids = append(kids, m)
	}
	if len(kids) == 1 {
		return n, nil
	}
	return node{kind: nodeOr, kids: kids}, nil
}

func (p *parser) and() (node, error) {
	n, err := p.unary()
	if err != nil {
		return n, err
	}
	kids := []node{n}
	for kw(p.peek(), "and") {
		p.next()
		m, err := p.unary()
		if err != nil {
			return m, err
		}
		kids = append(kids, m)
	}
	if len(kids) == 1 {
		return n, nil
	}
	return node{kind: nodeAnd, kids: kids}, nil
}

func (p *parser) unary() (node, error) {
	t := p.peek()
	switch {
	case kw(t, "not"):
		p.next()
		n, err := p.unary()
		if err != nil {
			return n, err
		}
		return node{kind: nodeNot, kids: []node{n}}, nil
	case t.kind == tLParen:
		p.next()
		n, err := p.or()
		if err != nil {
			return n, err
		}
		if c := p.next(); c.kind != tRParen {
			return n, p.errorf(c, "expected ')' to close the '(' at column %d, got %s", t.pos+1, c.desc())
		}
		return n, nil
	}
	return p.comparison()
}

func (p *parser) comparison() (node, error) {
	t := p.next()
	if t.kind != tIdent || isKeyword(t.text) {
		return node{}, p.errorf(t, "expected a column name, got %s; write conditions like tenant_id in [1, 2]", t.desc())
	}
	n := node{kind: nodeIn, col: t.text}
	op := p.next()
	switch {
	case op.kind == tEq || op.kind == tNe:
		n.neg, n.equal = op.kind == tNe, true
		l, err := p.literal()
		if err != nil {
			return n, err
		}
		n.vals = []lit{l}
		return n, nil
	case kw(op, "not"):
		in := p.next()
		if !kw(in, "in") {
			return n, p.errorf(in, "expected \"in\" after \"not\" (col not in [1, 2])")
		}
		n.neg = true
	case kw(op, "in"):
	default:
		return n, p.errorf(op, "expected =, !=, in or not in after column %s, got %s", t.text, op.desc())
	}
	open := p.next()
	if open.kind != tLBrack && open.kind != tLParen {
		return n, p.errorf(open, "expected a list like [1, 2] after \"in\", got %s", open.desc())
	}
	closeKind := tRBrack
	if open.kind == tLParen {
		closeKind = tRParen
	}
	for {
		l, err := p.literal()
		if err != nil {
			return n, err
		}
		n.vals = append(n.vals, l)
		sep := p.next()
		if sep.kind == closeKind {
			return n, nil
		}
		if sep.kind != tComma {
			return n, p.errorf(sep, "expected ',' or the end of the list, got %s", sep.desc())
		}
	}
}

func isKeyword(s string) bool {
	switch strings.ToLower(s) {
	case "and", "or", "not", "in", "true", "false", "null":
		return true
	}
	return false
}

func (p *parser) literal() (lit, error) {
	t := p.next()
	switch {
	case t.kind == tNumber:
		n, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			return lit{}, p.errorf(t, "number out of range; quote it as a string")
		}
		return lit{text: strconv.FormatInt(n, 10), val: n}, nil
	case t.kind == tString:
		return lit{text: t.text, val: t.text}, nil
	case kw(t, "true"), kw(t, "false"):
		b := strings.EqualFold(t.text, "true")
		return lit{text: strconv.FormatBool(b), val: b}, nil
	case kw(t, "null"):
		return lit{null: true}, nil
	}
	return lit{}, p.errorf(t, "expected a value (integer, 'string', true, false or null), got %s", t.desc())
}
