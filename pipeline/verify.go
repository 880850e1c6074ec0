package pipeline

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/mapping"
	"github.com/understudy/understudy/sinks"
	"github.com/understudy/understudy/transform"
)

// VerifyBuckets is how many key buckets verify compares per table. Rows are spread
// over buckets by a hash of their (transformed) key, and each bucket compares a
// count and an order-independent checksum, so verify streams both sides in any
// order with constant memory and reports where differences are without printing a
// row value.
const VerifyBuckets = 256

// TableReport is verify's finding for one table.
type TableReport struct {
	Table                  string
	SourceRows, TargetRows int64
	// DifferingBuckets lists the key buckets whose count or checksum differ.
	DifferingBuckets []int
}

// Match reports whether the target equals transform(source) for this table.
func (t TableReport) Match() bool { return len(t.DifferingBuckets) == 0 }

// Report is verify's finding for one pipeline.
type Report struct {
	Pipeline string
	Tables   []TableReport
	// Skipped lists columns not compared: run-scoped replacements without a
	// configured run_id.
	Skipped []string
}

// runScoped reports whether a rule (or a JSON path rule inside it) uses scope run.
func runScoped(r transform.Rule) bool {
	if r.Scope == string(mapping.Run) {
		return true
	}
	for _, p := range r.Paths {
		if runScoped(p) {
			return true
		}
	}
	return false
}

type buckets struct {
	count [VerifyBuckets]int64
	sum   [VerifyBuckets]uint64
	rows  int64
}

// verifySeed is fixed per process: both sides of one comparison hash alike.
var verifySeed = maphash.MakeSeed()

func (b *buckets) add(t cdc.Table, cols []string, row cdc.Row) {
	if t.Partial {
		// Columns lists only some attributes (DynamoDB): compare every one the
		// row has, except those excluded (in cols, for a Partial table).
		cols = partialCols(row, cols)
	}
	var kh maphash.Hash
	kh.SetSeed(verifySeed)
	for _, k := range t.Key {
		kh.WriteString(cdc.Canonical(row[k]))
		kh.WriteByte(0)
	}
	var rh maphash.Hash
	rh.SetSeed(verifySeed)
	for _, c := range cols {
		v, ok := row[c]
		rh.WriteString(c)
		switch {
		case !ok:
			rh.WriteByte(1)
		case v == nil:
			rh.WriteByte(2)
		default:
			rh.WriteByte(3)
			rh.WriteString(cdc.Canonical(v))
		}
		rh.WriteByte(0)
	}
	i := kh.Sum64() % VerifyBuckets
	b.count[i]++
	b.sum[i] += rh.Sum64()
	b.rows++
}

// Verify compares the target with transform(source), table by table. Changes that
// arrive while it reads show up as differences; run it when the source is quiet or
// run it twice.
func (d *Deployment) Verify(ctx context.Context, name string) (Report, error) {
	rep := Report{Pipeline: name}
	p, err := d.Pipeline(ctx, name)
	if err != nil {
		return rep, err
	}
	defer p.Close()
	sr, ok := p.Source.(cdc.TableReader)
	if !ok {
		return rep, fmt.Errorf("verify is not supported for this source kind yet")
	}
	tr, ok := p.Sink.(sinks.TableReader)
	if !ok {
		return rep, fmt.Errorf("verify is not supported for this target kind yet")
	}
	tables, err := p.Source.Open(ctx)
	if err != nil {
		return rep, err
	}
	targets, err := p.Transform.Prepare(tables)
	if err != nil {
		return rep, err
	}
	spec, err := d.spec(name)
	if err != nil {
		return rep, err
	}
	for i, t := range tables {
		target := targets[i]
		cols := make([]string, 0, len(target.Columns))
		for _, c := range target.Columns {
			if target.Partial {
				break // handled below
			}
			// A run-scoped replacement differs in every process unless run_id is
			// set, so this process cannot recompute what the sync wrote.
			if d.Config.RunID == "" && runScoped(spec.Rules[t.Name][c.Name]) {
				rep.Skipped = append(rep.Skipped, t.Name+"."+c.Name)
				continue
			}
			cols = append(cols, c.Name)
		}
		slices.Sort(cols)
		if target.Partial {
			cols = cols[:0]
			for name, r := range spec.Rules[t.Name] {
				if d.Config.RunID == "" && runScoped(r) {
					rep.Skipped = append(rep.Skipped, t.Name+"."+name)
					cols = append(cols, name) // excluded, see partialCols
				}
			}
		}
		var src, dst buckets
		err := sr.ReadTable(ctx, t, func(rows []cdc.Row) error {
			out, err := p.Transform.Rows(ctx, t.Name, rows)
			for _, r := range out {
				src.add(target, cols, r)
			}
			return err
		})
		if err != nil {
			return rep, fmt.Errorf("reading source %s: %w", t.Name, err)
		}
		err = tr.ReadTable(ctx, target, func(rows []cdc.Row) error {
			for _, r := range rows {
				dst.add(target, cols, r)
			}
			return nil
		})
		if err != nil {
			return rep, fmt.Errorf("reading target %s: %w", t.Name, err)
		}
		tr := TableReport{Table: t.Name, SourceRows: src.rows, TargetRows: dst.rows}
		for b := range VerifyBuckets {
			if src.count[b] != dst.count[b] || src.sum[b] != dst.sum[b] {
				tr.DifferingBuckets = append(tr.DifferingBuckets, b)
			}
		}
		rep.Tables = append(rep.Tables, tr)
	}
	return rep, nil
}

// partialCols returns the row's columns, sorted, without those in skip.
func partialCols(row cdc.Row, skip []string) []string {
	cols := make([]string, 0, len(row))
	for c := range row {
		if !slices.Contains(skip, c) {
			cols = append(cols, c)
		}
	}
	slices.Sort(cols)
	return cols
}
