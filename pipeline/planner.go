package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/transform"
)

// planner adapts *transform.Transformer to the pipeline's Transformer: it compiles
// a plan per source table and derives the target schema (dropped columns removed,
// nulled columns nullable).
type planner struct{ t *transform.Transformer }

func (p *planner) Prepare(tables []cdc.Table) ([]cdc.Table, error) {
	out := make([]cdc.Table, 0, len(tables))
	var errs []error
	for _, t := range tables {
		plan, err := p.t.Plan(t)
		if err != nil {
			errs = append(errs, fmt.Errorf("rules for %s: %w", t.Name, err))
			continue
		}
		target := t
		target.Columns = nil
		for _, c := range t.Columns {
			if plan.Dropped(c.Name) {
				continue
			}
			if plan.Nulled(c.Name) {
				c.Nullable = true // a null rule on a NOT NULL column must still load
			}
			target.Columns = append(target.Columns, c)
		}
		out = append(out, target)
	}
	return out, errors.Join(errs...)
}

func (p *planner) Rows(ctx context.Context, table string, rows []cdc.Row) ([]cdc.Row, error) {
	return p.t.Rows(ctx, table, rows)
}

func (p *planner) Changes(ctx context.Context, changes []cdc.Change) ([]cdc.Change, error) {
	return p.t.Changes(ctx, changes)
}
