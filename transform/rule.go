// Package transform turns production changes into anonymized ones: per-table rules
// compiled into a column plan, generators that propose realistic replacements, and
// row filters for tenant subsetting.
//
// Files: rule.go (the rule spec), plan.go (Config, New, Plan, Validate),
// apply.go (Rows, Changes: one Resolver call per batch), generators.go and
// layout.go (mapping generators), keyed.go (keyed hash, date shift), json.go
// (JSON path rules), filter.go (row filters), values.go (kind conversions).
//
// Decisions worth knowing:
//   - NULL stays NULL and the empty string stays empty under every action but
//     null and drop; a column absent from a row stays absent.
//   - Replacements and hashes come back in the Go type of the value they replace
//     (int64 stays int64, Decimal stays Decimal, []byte stays []byte).
//   - A date shift is a replace rule with generator date_shift; it needs no
//     mapping store. Entity defaults to the table's key.
//   - hash keeps the input's length and character classes but, unlike replace,
//     is not injective; use replace for unique columns.
//   - Text that a json rule cannot parse, or that date_shift cannot read as a
//     date, is keyed-hashed rather than copied or failed on.
package transform

// Action is what a rule does to a column's value.
type Action string

const (
	Keep     Action = "keep"     // copy the value unchanged
	Null     Action = "null"     // replace with NULL
	Constant Action = "constant" // replace with Rule.Value (zero-fill when Value is nil)
	Hash     Action = "hash"     // keyed hash with the input's width and character classes
	Replace  Action = "replace"  // consistent replacement from a generator, via mapping
	Drop     Action = "drop"     // remove the column from the target
	JSONPath Action = "json"     // apply Rule.Paths inside a JSON/document value
)

// Rule is one column's rule, as written in the config.
type Rule struct {
	Action Action
	// Generator names the generator of a Replace rule ("last_name", "email", …;
	// see GeneratorNames). "date_shift" moves dates instead (see Entity, MaxDays).
	Generator string
	// Domain groups columns whose values share replacements across tables and
	// stores; defaults to the generator's name.
	Domain string
	// Scope is "permanent" (default), "daily" or "run".
	Scope string
	// Value is a Constant rule's value; nil means the zero value of the column's kind.
	Value any
	// Entity names the column whose value identifies the entity for date_shift, so
	// every date of one entity moves by the same number of days.
	Entity string
	// MaxDays bounds date_shift's shift (default 365).
	MaxDays int
	// Paths maps JSON paths ("$.email", "$.phones[*]", "$.address.city") to rules,
	// for a JSONPath rule.
	Paths map[string]Rule
}

// Policy says what happens to a column that no rule names.
type Policy string

const (
	PolicyKeep  Policy = "keep"  // copy unnamed columns as they are (default)
	PolicyNull  Policy = "null"  // NULL every unnamed column except keys
	PolicyError Policy = "error" // refuse to start until every column has a rule
)
