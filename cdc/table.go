package cdc

import "strings"

// Kind is the normalized kind of a column's values: it tells a transformer and a
// sink which Go type to expect (see value.go) without knowing the source's type
// names.
type Kind uint8

const (
	KindUnknown   Kind = iota
	KindBool           // bool
	KindInt            // int64
	KindUint           // uint64
	KindFloat          // float64
	KindDecimal        // Decimal
	KindString         // string (text, varchar, char, enum, set, inet, uuid …)
	KindBytes          // []byte
	KindTimestamp      // time.Time in UTC
	KindDate           // Date
	KindTime           // TimeOfDay
	KindInterval       // Interval
	KindJSON           // JSON
	KindArray          // []any of normalized values
)

var kindNames = [...]string{"unknown", "bool", "int", "uint", "float", "decimal", "string",
	"bytes", "timestamp", "date", "time", "interval", "json", "array"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind?"
}

// Column describes one column of a source table.
type Column struct {
	Name string
	// Type is the source's own type name ("character varying(80)", "bigint unsigned",
	// "jsonb", "S"); sinks of the same kind use it to create target tables.
	Type     string
	Kind     Kind
	Nullable bool
	// Enum lists the allowed values of an enum column, when the source has them.
	Enum []string
}

// Table describes one selected source table. Sources report it at start-up and
// again whenever the schema changes; transform plans are compiled per Table.
type Table struct {
	Name    string   // "schema.table" (SQL) or the table/topic name
	Columns []Column // in source order
	Key     []string // primary-key column names in key order; never empty for SQL tables
}

// Column returns the named column and whether it exists.
func (t *Table) Column(name string) (Column, bool) {
	for _, c := range t.Columns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// IsKey reports whether name is a primary-key column.
func (t *Table) IsKey(name string) bool {
	for _, k := range t.Key {
		if k == name {
			return true
		}
	}
	return false
}

// SplitName splits "schema.table" into its parts; a name without a dot has an empty
// schema.
func SplitName(name string) (schema, table string) {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "", name
}
