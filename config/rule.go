package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/understudy/understudy/mapping"
	"github.com/understudy/understudy/transform"
	"gopkg.in/yaml.v3"
)

// Rule syntax. A rule is either a scalar shorthand:
//
//	keep | null | drop | hash | zero          (zero: constant zero-fill of the column's kind)
//
// or a mapping with exactly one action:
//
//	{replace: GEN, domain: D, scope: permanent|daily|run}
//	{replace: date_shift, entity: COL, max_days: N}     (plus domain/scope)
//	{constant: V}                                       (any scalar; constant: null is null)
//	{hash: true} | {hash: {domain: D}}
//	{json: {PATH: RULE, …}}                             (path rules: same syntax, but not json)
//
// The syntax is checked here, with lines; what a rule means (is the generator known,
// does it take an entity) is transform.Validate's.

var (
	shorthands    = []string{"keep", "null", "drop", "hash", "zero"}
	ruleFields    = []string{"replace", "domain", "scope", "entity", "max_days", "constant", "hash", "json"}
	ruleActions   = []string{"replace", "constant", "hash", "json"}
	hashFields    = []string{"domain"}
	replaceOnly   = []string{"domain", "scope", "entity", "max_days"}
	scopes        = []string{string(mapping.Permanent), string(mapping.Daily), string(mapping.Run)}
	ruleSyntaxTip = "write keep, null, drop, hash, zero, {replace: GEN, domain: D}, {constant: V}, {hash: true} or {json: {PATH: RULE}}"
)

// rule reads one rule; inJSON says it is the rule of a JSON path. ok is false when
// the rule has a problem (recorded).
func (p *parser) rule(n *yaml.Node, field string, inJSON bool) (transform.Rule, bool) {
	n = deref(n)
	switch n.Kind {
	case yaml.ScalarNode:
		return p.shorthand(n, field)
	case yaml.MappingNode:
		return p.ruleMapping(n, field, inJSON)
	}
	p.add(n.Line, field, "a rule must be a word or a mapping, not %s; %s", kindName(n), ruleSyntaxTip)
	return transform.Rule{}, false
}

// shorthand reads a scalar rule: keep, null, drop, hash or zero.
func (p *parser) shorthand(n *yaml.Node, field string) (transform.Rule, bool) {
	v, ok := p.scalarOf(n, field)
	if !ok {
		return transform.Rule{}, false
	}
	word := v.s
	if v.null {
		// "null" and "~" are YAML's null, which is also the null rule; an empty value
		// is more likely a rule not yet written than a wish for NULL.
		if v.raw == "" {
			p.add(v.line, field, "the rule is empty; %s", ruleSyntaxTip)
			return transform.Rule{}, false
		}
		word = "null"
	}
	switch word {
	case "keep":
		return transform.Rule{Action: transform.Keep}, true
	case "null":
		return transform.Rule{Action: transform.Null}, true
	case "drop":
		return transform.Rule{Action: transform.Drop}, true
	case "hash":
		return transform.Rule{Action: transform.Hash}, true
	case "zero":
		return transform.Rule{Action: transform.Constant}, true
	case "replace", "constant", "json", "date_shift":
		p.add(v.line, field, "%s needs arguments; write {replace: GEN, domain: D}, {constant: V} or {json: {PATH: RULE}}", v.show())
		return transform.Rule{}, false
	}
	hint := suggest(word, shorthands)
	if hint == "" && slices.Contains(transform.GeneratorNames(), word) {
		// A bare generator name is the commonest slip: "email" for {replace: email}.
		hint = fmt.Sprintf("; for a replacement write {replace: %s}", word)
	}
	p.add(v.line, field, "unknown rule %s%s; %s", v.show(), hint, ruleSyntaxTip)
	return transform.Rule{}, false
}

// ruleMapping reads a rule written as a mapping with exactly one action.
func (p *parser) ruleMapping(n *yaml.Node, field string, inJSON bool) (transform.Rule, bool) {
	vals := make(map[string]*yaml.Node)
	lines := make(map[string]int)
	var actions []string
	before, expandedBefore := len(p.probs.list), len(p.expanded)
	p.fields(n, field, ruleFields, func(key string, k, v *yaml.Node) {
		vals[key], lines[key] = v, k.Line
		if slices.Contains(ruleActions, key) {
			actions = append(actions, key)
		}
	})
	switch len(actions) {
	case 0:
		p.add(n.Line, field, "the rule has no action; add one of replace, constant, hash, json (or %s)", ruleSyntaxTip)
		return transform.Rule{}, false
	case 1:
	default:
		p.add(lines[actions[1]], field, "the rule has both %s and %s; a rule does exactly one thing", actions[0], actions[1])
		return transform.Rule{}, false
	}
	action := actions[0]
	if action != "replace" {
		for _, key := range replaceOnly {
			if _, has := vals[key]; !has {
				continue
			}
			hint := "remove it"
			if key == "domain" && action == "hash" {
				hint = "write {hash: {domain: D}}"
			}
			p.add(lines[key], join(field, key), "%s applies only to replace rules; %s", key, hint)
		}
	}

	var (
		r         transform.Rule
		pathLines map[string]int
	)
	switch action {
	case "replace":
		r.Action = transform.Replace
		if s, ok := p.str(vals["replace"], join(field, "replace")); ok {
			if s.s == "" {
				p.add(s.line, join(field, "replace"), "names no generator; write e.g. {replace: last_name}")
			}
			r.Generator = s.s
		}
		if v, has := vals["domain"]; has {
			r.Domain = p.domain(v, join(field, "domain"))
		}
		if v, has := vals["scope"]; has {
			if s, ok := p.str(v, join(field, "scope")); ok {
				r.Scope = s.s
				if !slices.Contains(scopes, s.s) {
					p.add(s.line, join(field, "scope"), "unknown scope %s%s; use permanent (default), daily or run", s.show(), suggest(s.s, scopes))
				}
			}
		}
		if v, has := vals["entity"]; has {
			if s, ok := p.str(v, join(field, "entity")); ok {
				if s.s == "" {
					p.add(s.line, join(field, "entity"), "is empty; name the column that identifies the entity, e.g. entity: customer_id")
				}
				r.Entity = s.s
			}
		}
		if v, has := vals["max_days"]; has {
			if s, ok := p.str(v, join(field, "max_days")); ok {
				d, err := strconv.Atoi(s.s)
				if err != nil || d <= 0 {
					p.add(s.line, join(field, "max_days"), "%s is not a positive whole number of days; e.g. max_days: 365", s.show())
				}
				r.MaxDays = d
			}
		}
	case "constant":
		r = p.constant(vals["constant"], join(field, "constant"))
	case "hash":
		r.Action = transform.Hash
		r.Domain = p.hashArg(vals["hash"], join(field, "hash"))
	case "json":
		if inJSON {
			p.add(lines["json"], join(field, "json"), "json rules cannot nest inside json paths; write the nested path in full ($.a.b)")
			break
		}
		r.Action = transform.JSONPath
		r.Paths, pathLines = p.jsonPaths(vals["json"], join(field, "json"))
	}
	clean := len(p.probs.list) == before
	if !clean && (r.Action != transform.JSONPath || len(r.Paths) == 0) {
		return transform.Rule{}, false
	}
	if inJSON {
		// Validated with the JSON rule that holds it, which knows it is a path rule.
		return r, true
	}
	// What the rule means is transform's to judge. Its messages about one JSON path
	// ("path $.email: …") are placed at that path's line.
	for _, msg := range transform.Validate(r) {
		// transform quotes values as it got them; show environment values as
		// written in the file instead.
		for _, v := range p.expanded[expandedBefore:] {
			if v.s != "" {
				msg = strings.ReplaceAll(msg, v.s, v.raw)
			}
		}
		line, f := n.Line, field
		for path, pl := range pathLines {
			for _, prefix := range []string{"path " + path + ": ", "path " + strconv.Quote(path) + ": "} {
				if rest, ok := strings.CutPrefix(msg, prefix); ok {
					line, f, msg = pl, join(join(field, "json"), path), rest
				}
			}
		}
		p.add(line, f, "%s", msg)
	}
	// A JSON rule with a broken path was still validated above, path by path, so
	// every problem in it is reported at once; it is not returned.
	return r, clean && len(p.probs.list) == before
}

// domain reads a domain name.
func (p *parser) domain(n *yaml.Node, field string) string {
	s, ok := p.str(n, field)
	if ok && s.s == "" {
		p.add(s.line, field, "is empty; name the domain whose values share replacements, e.g. domain: surname, or remove it")
	}
	return s.s
}

// constant reads {constant: V}. The YAML type of V is kept (5 is a number, "5" a
// string) so the sink can write it into a column of that kind.
func (p *parser) constant(n *yaml.Node, field string) transform.Rule {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		p.add(n.Line, field, "must be a single value, not %s; for JSON columns write {json: {PATH: RULE}}", kindName(n))
		return transform.Rule{}
	}
	if isNull(n) {
		return transform.Rule{Action: transform.Null}
	}
	v, ok := p.scalarOf(n, field)
	if !ok {
		return transform.Rule{}
	}
	node := *n
	if v.expanded {
		// Type the expanded text as if it had been written there: ${N} with N=5 is
		// the number 5 unless quoted.
		node.Value = v.s
		if node.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
			node.Tag = ""
		}
	}
	var value any
	if err := node.Decode(&value); err != nil {
		p.add(v.line, field, "%s is not a usable value", v.show())
		return transform.Rule{}
	}
	if value == nil {
		return transform.Rule{Action: transform.Null}
	}
	return transform.Rule{Action: transform.Constant, Value: value}
}

// hashArg reads the value of hash: true, or {domain: D}, and returns the domain.
func (p *parser) hashArg(n *yaml.Node, field string) string {
	n = deref(n)
	if n.Kind == yaml.MappingNode {
		var d string
		p.fields(n, field, hashFields, func(_ string, _, v *yaml.Node) {
			d = p.domain(v, join(field, "domain"))
		})
		return d
	}
	s, ok := p.scalarOf(n, field)
	if !ok {
		return ""
	}
	if b, err := strconv.ParseBool(s.s); err != nil || !b {
		p.add(s.line, field, "%s: write hash: true, or hash: {domain: D} to share hashes across columns (for no hashing write keep)", s.show())
	}
	return ""
}

// jsonPaths reads {PATH: RULE, …}, returning the rules and each path's line.
func (p *parser) jsonPaths(n *yaml.Node, field string) (map[string]transform.Rule, map[string]int) {
	paths := make(map[string]transform.Rule)
	lines := make(map[string]int)
	if d := deref(n); isNull(d) || (d.Kind == yaml.MappingNode && len(d.Content) == 0) {
		p.add(d.Line, field, "lists no paths; write json: {$.email: {replace: email}}")
		return nil, nil
	}
	p.fields(n, field, nil, func(path string, k, v *yaml.Node) {
		f := join(field, path)
		if !strings.HasPrefix(path, "$") {
			p.add(k.Line, f, "a JSON path starts at the document root $; write $.%s", path)
			return
		}
		if r, ok := p.rule(v, f, true); ok {
			paths[path], lines[path] = r, k.Line
		}
	})
	return paths, lines
}
