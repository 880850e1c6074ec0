package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/understudy/understudy/transform"
	"gopkg.in/yaml.v3"
)

// The field names of each mapping, for unknown-field errors and suggestions.
var (
	topFields      = []string{"secret", "mappings", "mapping_cache", "checkpoints", "unclassified", "metrics", "run_id", "pipelines"}
	pipelineFields = []string{"name", "source", "target", "tables", "rules", "where", "unclassified", "checkpoints", "publish"}
)

// maxNodes bounds the file's size after alias expansion, so a few lines of nested
// aliases (a "billion laughs" file) cannot make the walk run for ever.
const maxNodes = 100_000

var (
	pipelineName = regexp.MustCompile(`^[a-z0-9_-]+$`)
	runID        = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	yamlLine     = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
)

// parser walks one file's node tree, collecting problems instead of stopping at the
// first.
type parser struct {
	dir   string // the config file's directory, absolute
	env   func(string) (string, bool)
	probs problems
	// secret is the expanded secret once read, scrubbed from every message.
	secret string
	// expanded lists every value taken from the environment, so messages written by
	// other packages (transform.Validate) can have them put back as written.
	expanded []scalar
}

func (p *parser) add(line int, field, format string, args ...any) {
	p.probs.add(line, field, format, args...)
}

// scalar is one scalar value, with ${ENV} expanded.
type scalar struct {
	s        string // the value, expanded
	raw      string // as written in the file
	line     int
	expanded bool // s came (partly) from the environment
	null     bool // the YAML null (empty, ~, null)
}

// show quotes the value for an error message: as written in the file, never as
// expanded, so no environment value reaches a terminal or log; passwords hidden.
func (v scalar) show() string {
	return strconv.Quote(Redacted(v.raw))
}

// parse walks the whole file. It returns a Config whose fields are only meaningful
// when no problem was recorded.
func (p *parser) parse(data []byte) *Config {
	cfg := &Config{}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.add(0, "", "the file is empty; start from the configuration example in README.md")
		} else {
			p.syntax(err)
		}
		return cfg
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.add(extra.Line, "", "a second YAML document (after ---); put the whole config in one document")
	} else if !errors.Is(err, io.EOF) {
		p.syntax(err)
	}
	if countNodes(&doc, maxNodes) > maxNodes {
		p.add(0, "", "the file expands to more than %d values (nested aliases?); write it out plainly", maxNodes)
		return cfg
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	root = deref(root)
	if isNull(root) {
		p.add(root.Line, "", "the file has no settings; start from the configuration example in README.md")
		return cfg
	}

	var (
		secretSeen, secretOK bool
		secretLine           = 1
		secretVal            scalar
		pipelinesNode        *yaml.Node
		checkpointsLine      int
	)
	p.fields(root, "", topFields, func(key string, k, v *yaml.Node) {
		switch key {
		case "secret":
			secretSeen, secretLine = true, k.Line
			secretVal, secretOK = p.str(v, key)
		case "mappings":
			if s, ok := p.str(v, key); ok && s.s != "" {
				cfg.Mappings = p.kvStore(s, key, false)
			}
		case "mapping_cache":
			if s, ok := p.str(v, key); ok && s.s != "" {
				n, err := strconv.Atoi(strings.ReplaceAll(s.s, "_", ""))
				if err != nil || n < MinMappingCache {
					p.add(s.line, key, "%s is not a number of entries ≥ %d; write e.g. `mapping_cache: 1000000` (about 200 MB)", s.show(), MinMappingCache)
				} else {
					cfg.MappingCache = n
				}
			}
		case "checkpoints":
			checkpointsLine = k.Line
			if s, ok := p.str(v, key); ok && s.s != "" {
				cfg.Checkpoints = p.kvStore(s, key, true)
			}
		case "unclassified":
			cfg.Unclassified = p.policy(v, key)
		case "metrics":
			if s, ok := p.str(v, key); ok && s.s != "" {
				cfg.Metrics = s.s
				if msg := checkListenAddr(s.s); msg != "" {
					p.add(s.line, key, "%s %s; write host:port, e.g. %s", s.show(), msg, DefaultMetrics)
				}
			}
		case "run_id":
			if s, ok := p.str(v, key); ok && s.s != "" {
				cfg.RunID = s.s
				if !runID.MatchString(s.s) {
					p.add(s.line, key, "%s: use 1 to 64 letters, digits, '.', '_' or '-' (it names mapping namespaces)", s.show())
				}
			}
		case "pipelines":
			pipelinesNode = v
		}
	})

	// The secret. Its value is never quoted: only the variable that should hold it.
	varName := "UNDERSTUDY_SECRET"
	if m := envRef.FindStringSubmatch(secretVal.raw); m != nil {
		varName = m[1]
	}
	fix := fmt.Sprintf("set %s to at least %d random bytes, e.g. `export %s=$(openssl rand -hex 32)`", varName, MinSecretLen, varName)
	switch {
	case secretSeen && !secretOK:
		// Already reported: not a single value, or its variable is unset.
	case !secretSeen:
		p.add(1, "secret", "required (the key of mapping hashes); add `secret: ${%s}` and %s", varName, fix)
	case secretVal.raw == "" || secretVal.null:
		p.add(secretLine, "secret", "is empty; write `secret: ${%s}` and %s", varName, fix)
	case !secretVal.expanded && secretVal.raw != "":
		if len(secretVal.s) >= 4 {
			p.secret = secretVal.s
		}
		p.add(secretVal.line, "secret", "is written into the file, where it ends up in version control; write `secret: ${%s}` and %s", varName, fix)
	case secretVal.expanded:
		if len(secretVal.s) >= 4 {
			p.secret = secretVal.s
		}
		if len(secretVal.s) < MinSecretLen {
			p.add(secretVal.line, "secret", "is shorter than %d bytes; %s", MinSecretLen, fix)
		}
	}
	cfg.Secret = secretVal.s

	// Defaults, after reading: relative to the config file, like explicit file: URLs.
	if cfg.Mappings == "" {
		cfg.Mappings = "file:" + filepath.Join(p.dir, "understudy-mappings.db")
	}
	// Checkpoints stays "" here when unset: each pipeline then keeps them in its
	// target's transactions when the target is SQL (exactly-once), else in the
	// embedded file next to the config; see the pipeline defaults below.
	if cfg.Unclassified == "" {
		cfg.Unclassified = transform.PolicyKeep
	}
	if cfg.Metrics == "" {
		cfg.Metrics = DefaultMetrics
	}

	cfg.Pipelines = p.pipelines(pipelinesNode, cfg, checkpointsLine)
	return cfg
}

// envRef finds the first ${NAME} or ${NAME:-…} reference in a raw value.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}`)

// syntax records a YAML parse error at its line. The parser stops at the first.
func (p *parser) syntax(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1 // yaml.v3 leaves the line out when its 0-based mark is 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
		// yaml.v3 adds 1 to scanner marks only; parser errors ("did not find
		// expected …") carry the 0-based line of the construct they were in.
		if strings.HasPrefix(msg, "did not find expected") {
			line++
		}
	}
	switch {
	case strings.Contains(msg, "mapping values are not allowed"):
		msg += `; quote a value that contains ": " or ends in ":", e.g. mappings: "memory:"`
	case strings.Contains(msg, "did not find expected ',' or '}'"), strings.Contains(msg, "did not find expected ',' or ']'"):
		msg += `; inside {…} and […] quote values that contain braces, brackets or commas, e.g. {domain: "${DOMAIN}"}`
	}
	p.add(line, "", "YAML syntax: %s", msg)
}

// fields walks a mapping node: it reports keys that are duplicated, not plain
// names, or not in known (when known is non-nil, with a suggestion), and calls fn
// for the others in file order. A null node is an empty mapping. It returns false
// when n is not a mapping at all.
func (p *parser) fields(n *yaml.Node, field string, known []string, fn func(key string, k, v *yaml.Node)) bool {
	n = deref(n)
	if isNull(n) {
		return true
	}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, field, "must be a mapping (key: value), not %s", kindName(n))
		return false
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.add(k.Line, field, "a key must be a plain name, not %s", kindName(k))
			continue
		}
		key := k.Value
		if key == "<<" {
			p.add(k.Line, field, "merge keys (<<) are not supported; write the settings out, or alias a whole value with *name")
			continue
		}
		if first, dup := seen[key]; dup {
			p.add(k.Line, join(field, key), "duplicate key (first at line %d); remove one, YAML would silently keep only the last", first)
			continue
		}
		seen[key] = k.Line
		if known != nil && !slices.Contains(known, key) {
			hint := suggest(key, known)
			if hint == "" {
				hint = "; known fields: " + strings.Join(known, ", ")
			}
			p.add(k.Line, field, "unknown field '%s'%s", key, hint)
			continue
		}
		fn(key, k, v)
	}
	return true
}

// scalarOf reads n as one scalar, expanding ${ENV}. ok is false, with the problem
// recorded, when n is not a scalar or the expansion failed.
func (p *parser) scalarOf(n *yaml.Node, field string) (scalar, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		p.add(n.Line, field, "must be a single value, not %s", kindName(n))
		return scalar{line: n.Line}, false
	}
	v := scalar{s: n.Value, raw: n.Value, line: n.Line, null: isNull(n)}
	if v.null || !strings.Contains(n.Value, "${") {
		return v, true
	}
	out, missing, err := expand(n.Value, p.env)
	if err != nil {
		p.add(n.Line, field, "%s", err)
		return v, false
	}
	for _, name := range missing {
		hint := fmt.Sprintf("export it, or give a default: ${%s:-value}", name)
		if field == "secret" {
			hint = fmt.Sprintf("set %s to at least %d random bytes, e.g. `export %s=$(openssl rand -hex 32)`", name, MinSecretLen, name)
		}
		p.add(n.Line, field, "environment variable %s is not set; %s", name, hint)
	}
	v.s, v.expanded = out, true
	p.expanded = append(p.expanded, v)
	return v, len(missing) == 0
}

// str reads a string setting: a null value is the empty string.
func (p *parser) str(n *yaml.Node, field string) (scalar, bool) {
	v, ok := p.scalarOf(n, field)
	if v.null {
		v.s = ""
	}
	return v, ok
}

// policy reads an unclassified-column policy.
func (p *parser) policy(n *yaml.Node, field string) transform.Policy {
	v, ok := p.scalarOf(n, field)
	if !ok {
		return ""
	}
	s := v.s
	if v.null && strings.EqualFold(v.raw, "null") {
		s = "null" // the YAML null spelled out is the policy of that name
	}
	switch transform.Policy(s) {
	case transform.PolicyKeep, transform.PolicyNull, transform.PolicyError:
		return transform.Policy(s)
	case "":
		return ""
	}
	p.add(v.line, field, "unknown policy %s; use keep (copy unnamed columns), null (NULL them) or error (refuse to start until every column has a rule)%s", v.show(), suggest(s, []string{"keep", "null", "error"}))
	return ""
}

// kvStore checks a mapping or checkpoint store URL and returns it normalized.
func (p *parser) kvStore(v scalar, field string, checkpoints bool) string {
	if checkpoints && v.s == CheckpointsInTarget {
		return v.s
	}
	out, msg := kvStoreURL(v.s, p.dir)
	if msg != "" {
		if checkpoints {
			msg += `, or "target" (in the target's own transaction)`
		}
		p.add(v.line, field, "%s %s", v.show(), msg)
		return ""
	}
	return out
}

// checkListenAddr returns why addr is not a host:port listen address, or "".
// "off" disables the metrics server.
func checkListenAddr(addr string) string {
	if addr == MetricsOff {
		return ""
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "is not host:port (or off)"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "has no valid port"
	}
	return ""
}

// pipelineInfo is what the cross-pipeline checks need beyond the Pipeline.
type pipelineInfo struct {
	field          string
	nameLine       int
	src, dst       *url.URL
	srcFam, dstFam string
	targetLine     int
	pub            *url.URL // the publish: URL, when valid
}

// pipelines reads the pipelines list, then checks what spans pipelines: unique
// names, and no target that is any pipeline's (production) source.
func (p *parser) pipelines(n *yaml.Node, cfg *Config, checkpointsLine int) []Pipeline {
	if n == nil || isNull(deref(n)) {
		p.add(1, "pipelines", "at least one pipeline is required; see the configuration example in README.md")
		return nil
	}
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, "pipelines", "must be a list (lines starting with '- name: …'), not %s", kindName(n))
		return nil
	}
	if len(n.Content) == 0 {
		p.add(n.Line, "pipelines", "at least one pipeline is required; see the configuration example in README.md")
		return nil
	}
	var (
		out   []Pipeline
		infos []pipelineInfo
	)
	for i, item := range n.Content {
		pl, info := p.pipeline(i, item, cfg, checkpointsLine)
		out = append(out, pl)
		infos = append(infos, info)
	}

	names := make(map[string]int)
	for i, pl := range out {
		if pl.Name == "" {
			continue
		}
		if first, dup := names[pl.Name]; dup {
			p.add(infos[i].nameLine, infos[i].field+".name", "duplicate pipeline name %q (first at line %d); names key slots and checkpoints, so each must be unique", pl.Name, first)
			continue
		}
		names[pl.Name] = infos[i].nameLine
	}

	// A target that is any pipeline's source writes into production: every source
	// is production by definition.
	for i, a := range infos {
		if a.dst == nil {
			continue
		}
		for j, b := range infos {
			if b.src == nil || !sameStore(a.dst, a.dstFam, b.src, b.srcFam) {
				continue
			}
			if i == j {
				p.add(a.targetLine, a.field+".target", "target equals source; understudy never writes to production: point target at the test database")
			} else {
				p.add(a.targetLine, a.field+".target", "target equals the source of pipeline %q (line %d); understudy never writes to production: point target at a test database", out[j].Name, out[j].Line)
			}
		}
	}
	return out
}

// pipeline reads one pipeline and checks what lies within it.
func (p *parser) pipeline(i int, n *yaml.Node, cfg *Config, checkpointsLine int) (Pipeline, pipelineInfo) {
	field := fmt.Sprintf("pipelines[%d]", i)
	n = deref(n)
	pl := Pipeline{
		Rules: make(map[string]map[string]transform.Rule),
		Where: make(map[string]string),
		Line:  n.Line,
	}
	info := pipelineInfo{field: field, nameLine: n.Line, targetLine: n.Line}
	if n.Kind != yaml.MappingNode {
		p.add(n.Line, field, "must be a mapping (name:, source:, target:, tables:, rules:), not %s", kindName(n))
		return pl, info
	}

	var (
		seen         = make(map[string]bool)
		tableLines   = make(map[string]int)
		ruleTables   []scalarKey
		whereTables  []scalarKey
		ownCkptLine  int
		pubLine      int
		unclassified transform.Policy
	)
	p.fields(n, field, pipelineFields, func(key string, k, v *yaml.Node) {
		seen[key] = true
		f := join(field, key)
		switch key {
		case "name":
			info.nameLine = k.Line
			if s, ok := p.str(v, f); ok {
				pl.Name = s.s
				switch {
				case s.s == "":
					p.add(s.line, f, "is empty; name the pipeline with [a-z0-9_-]+, e.g. name: bank")
				case !pipelineName.MatchString(s.s):
					p.add(s.line, f, "%s: use lowercase letters, digits, '_' and '-' only (it names slots and checkpoint keys)", s.show())
				case len(s.s) > MaxNameLen:
					p.add(s.line, f, "is %d bytes; at most %d (it is part of replication slot names)", len(s.s), MaxNameLen)
				}
			}
		case "source":
			if s, ok := p.str(v, f); ok {
				pl.Source = s.s
				info.src, info.srcFam = p.storeURL(s, f)
			}
		case "target":
			info.targetLine = k.Line
			if s, ok := p.str(v, f); ok {
				pl.Target = s.s
				info.dst, info.dstFam = p.storeURL(s, f)
			}
		case "publish":
			// Change events go to Kafka as well as (or, without a target, instead
			// of) the target store; only Kafka can carry them.
			if s, ok := p.str(v, f); ok {
				pl.Publish = s.s
				pubLine = k.Line
				pub, fam := p.storeURL(s, f)
				switch {
				case pub == nil:
				case fam != "kafka":
					p.add(s.line, f, "%s: change events are published to Kafka only; write publish: kafka://broker:9092?prefix=understudy", s.show())
				default:
					info.pub = pub
				}
			}
		case "tables":
			pl.Tables = p.tables(v, f, tableLines)
		case "rules":
			p.fields(v, f, nil, func(table string, tk, tv *yaml.Node) {
				ruleTables = append(ruleTables, scalarKey{table, tk.Line})
				tf := join(f, table)
				cols := make(map[string]transform.Rule)
				p.fields(tv, tf, nil, func(col string, ck, cv *yaml.Node) {
					if r, ok := p.rule(cv, join(tf, col), false); ok {
						cols[col] = r
					}
				})
				pl.Rules[table] = cols
			})
		case "where":
			p.fields(v, f, nil, func(table string, tk, tv *yaml.Node) {
				whereTables = append(whereTables, scalarKey{table, tk.Line})
				tf := join(f, table)
				s, ok := p.str(tv, tf)
				if !ok {
					return
				}
				if strings.TrimSpace(s.s) == "" {
					p.add(s.line, tf, "is empty; write a filter such as tenant_id in [1, 2], or remove the line")
					return
				}
				pl.Where[table] = s.s
				if _, err := transform.ParseFilter(s.s); err != nil {
					msg := err.Error()
					if s.expanded {
						msg = strings.ReplaceAll(msg, s.s, s.raw)
					}
					p.add(s.line, tf, "%s", msg)
				}
			})
		case "unclassified":
			unclassified = p.policy(v, f)
		case "checkpoints":
			ownCkptLine = k.Line
			if s, ok := p.str(v, f); ok && s.s != "" {
				pl.Checkpoints = p.kvStore(s, f, true)
			}
		}
	})

	for _, req := range []struct{ key, hint string }{
		{"name", "name: bank ([a-z0-9_-]+, unique)"},
		{"source", "source: postgres://user@prod-host:5432/db (the production store, read only)"},
		{"target", "target: postgres://user@test-host:5432/db (the test store understudy writes)"},
		{"tables", "tables: [public.customers, …]"},
	} {
		if req.key == "target" && seen["publish"] {
			continue // publishing change events is a target of its own
		}
		if !seen[req.key] {
			if req.key == "target" {
				req.hint += ", or publish: kafka://broker:9092 to publish change events instead"
			}
			p.add(n.Line, field, "%s is required; add %s", req.key, req.hint)
		}
	}

	// Rules and filters must name replicated tables: a typo would otherwise leave
	// the real table unanonymized without a word.
	tables := make([]string, 0, len(tableLines))
	for t := range tableLines {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	for _, what := range []struct {
		name string
		keys []scalarKey
	}{{"rules", ruleTables}, {"where", whereTables}} {
		for _, t := range what.keys {
			if _, ok := tableLines[t.name]; ok || !seen["tables"] {
				continue
			}
			p.add(t.line, join(join(field, what.name), t.name), "%s for %s, which is not in tables%s", what.name, t.name, suggestTable(t.name, tables))
		}
	}

	if info.pub != nil && info.src != nil && sameStore(info.pub, "kafka", info.src, info.srcFam) {
		p.add(pubLine, join(field, "publish"), "names the source's Kafka cluster; understudy never writes to production: publish to the test cluster")
	}

	pl.Unclassified = unclassified
	if pl.Unclassified == "" {
		pl.Unclassified = cfg.Unclassified
	}
	ckptLine := ownCkptLine
	if pl.Checkpoints == "" {
		pl.Checkpoints = cfg.Checkpoints
		ckptLine = checkpointsLine
	}
	if pl.Checkpoints == "" {
		if info.dst != nil && sqlFamilies[info.dstFam] {
			pl.Checkpoints = CheckpointsInTarget
		} else {
			pl.Checkpoints = "file:" + filepath.Join(p.dir, "understudy-state.db")
		}
	}
	if pl.Checkpoints == CheckpointsInTarget && info.dst != nil && !sqlFamilies[info.dstFam] {
		where := "its checkpoints"
		if ownCkptLine == 0 {
			where = fmt.Sprintf("the top-level checkpoints (line %d)", ckptLine)
		}
		p.add(info.targetLine, join(field, "target"), "%s say \"target\", but only a Postgres or MySQL target can hold checkpoints in its transaction; give this pipeline checkpoints: file:… or redis://…", where)
	}
	return pl, info
}

// scalarKey is a mapping key with its line.
type scalarKey struct {
	name string
	line int
}

// suggestTable proposes the closest table name for a typo.
func suggestTable(name string, tables []string) string {
	s := suggest(name, tables)
	if s == "" && len(tables) > 0 && len(tables) <= 8 {
		return "; tables are " + strings.Join(tables, ", ")
	}
	return s
}

// storeURL checks a source or target URL.
func (p *parser) storeURL(v scalar, field string) (*url.URL, string) {
	if v.s == "" {
		p.add(v.line, field, "is empty; write a URL such as postgres://user@host:5432/db")
		return nil, ""
	}
	u, fam, msg := storeURL(v.s)
	if msg != "" {
		if v.expanded && strings.HasPrefix(msg, "unknown scheme") {
			// Nothing of an environment value is shown, its scheme included.
			msg = "has an unknown scheme; use one of " + storeSchemeList
		}
		p.add(v.line, field, "%s %s", v.show(), msg)
		return nil, ""
	}
	return u, fam
}

// tables reads the tables list, recording each table's line in lines.
func (p *parser) tables(n *yaml.Node, field string, lines map[string]int) []string {
	n = deref(n)
	if isNull(n) || (n.Kind == yaml.SequenceNode && len(n.Content) == 0) {
		p.add(n.Line, field, "is empty; list the tables to replicate, e.g. tables: [public.customers]")
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.add(n.Line, field, "must be a list, e.g. [public.customers, public.accounts], not %s", kindName(n))
		return nil
	}
	var out []string
	for i, item := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		s, ok := p.str(item, f)
		if !ok {
			continue
		}
		if s.s == "" {
			p.add(s.line, f, "is empty; remove it or name a table")
			continue
		}
		if first, dup := lines[s.s]; dup {
			p.add(s.line, f, "%s is listed twice (first at line %d)", s.show(), first)
			continue
		}
		lines[s.s] = s.line
		out = append(out, s.s)
	}
	return out
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// deref follows aliases (*name) to the node they stand for.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is YAML's null: an empty value, ~ or null.
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if isNull(n) {
			return "an empty value"
		}
		return "a single value"
	}
	return "nothing"
}

// countNodes counts n's nodes with aliases expanded, stopping once past limit.
func countNodes(n *yaml.Node, limit int) int {
	count := 0
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil || count > limit {
			return
		}
		count++
		if n.Kind == yaml.AliasNode {
			walk(n.Alias)
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return count
}
