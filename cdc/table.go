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
	// RenamedFrom is set only when a stream's Batch.Schema announces that the
	// table was renamed in the source (RENAME TABLE old TO new): it holds the old
	// name. A sink that supports it moves its target table of the old name to the
	// new one, rows included, before preparing the new name; a sink that ignores it
	// prepares an empty table under the new name.
	RenamedFrom string
	// Partial says Columns lists only some of the columns rows carry: a DynamoDB
	// table declares only its key and index attributes, and every other attribute
	// is free-form. Rules may then name columns that Columns does not list.
	Partial bool
	// Indexes are the table's secondary indexes, for a sink that recreates them on
	// a target of the same kind (DynamoDB GSIs and LSIs: without them the test
	// application's queries fail). SQL sources leave it empty.
	Indexes []Index
}

// Index is a secondary index of a table.
type Index struct {
	Name string
	// Key lists the index's key columns: partition (hash) first, then sort.
	Key []string
	// Local is set for an index that shares the table's partition key (a
	// DynamoDB local secondary index).
	Local bool
	// Projection is what the index carries besides keys: "ALL", "KEYS_ONLY", or
	// "INCLUDE" with the columns in Include.
	Projection string
	Include    []string
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
