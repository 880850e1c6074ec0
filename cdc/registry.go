package cdc

import (
	"context"
	"log/slog"

	"github.com/understudy/understudy/internal/registry"
)

// RowFilter is a row predicate a source can push into its snapshot queries (tenant
// subsetting). transform.Filter implements it. Sources that cannot push a filter
// down simply read every row; the transformer filters again either way.
type RowFilter interface {
	// Columns lists the columns the predicate reads.
	Columns() []string
	// SQL renders the predicate with quoted identifiers and numbered placeholders
	// (1-based: placeholder(1) is the first argument),
	// returning its arguments.
	SQL(quoteIdent func(string) string, placeholder func(i int) string) (string, []any)
}

// SourceOptions configure one pipeline's source.
type SourceOptions struct {
	URL      string
	Pipeline string   // names replication state (slot, publication, consumer group)
	Tables   []string // selected tables, as written in the config
	// Filters maps table → row predicate for snapshot pushdown; may be empty.
	Filters map[string]RowFilter
	// Log receives the source's notices (names and positions, never values);
	// nil discards them.
	Log *slog.Logger
}

// OpenFunc creates a Source; it must not connect (Source.Open does).
type OpenFunc func(ctx context.Context, opts SourceOptions) (Source, error)

var sources = registry.New[OpenFunc]("source")

// Register makes a source kind available under URL schemes. Backends call it from
// init(); cmd/understudy imports the backends it ships.
func Register(open OpenFunc, schemes ...string) {
	for _, s := range schemes {
		sources.Register(s, open)
	}
}

// NewSource creates the Source registered for opts.URL's scheme.
func NewSource(ctx context.Context, opts SourceOptions) (Source, error) {
	open, _, err := sources.Lookup(opts.URL)
	if err != nil {
		return nil, err
	}
	return open(ctx, opts)
}

// Schemes lists the registered source schemes, sorted.
func Schemes() []string { return sources.Schemes() }
