package mysql

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync/atomic"

	driver "github.com/go-sql-driver/mysql"

	"github.com/understudy/understudy/cdc"
	mysqlsrc "github.com/understudy/understudy/cdc/mysql"
)

// Snapshot rows are written with LOAD DATA LOCAL INFILE … REPLACE from an
// in-memory buffer: the server parses a tab-separated stream far more cheaply
// than a 1,000-row INSERT … ON DUPLICATE KEY UPDATE. REPLACE keeps the load an
// upsert (a resumed load rewrites rows it already wrote). Servers that refuse
// local infile (local_infile=OFF) get the multi-row upserts instead.

var loadSeq atomic.Uint64

// errNoLocalInfile marks a server that refuses LOAD DATA LOCAL.
var errNoLocalInfile = errors.New("local infile refused")

// loadData writes rows (all with the same columns) with one LOAD DATA LOCAL
// INFILE … REPLACE. It returns errNoLocalInfile when the server refuses it, and
// fails when the server reports warnings (with LOCAL, bad values would otherwise
// be adjusted silently); messages name codes and counts, never values.
func (s *Sink) loadData(ctx context.Context, table string, rows []cdc.Row) error {
	cols := rowColumns(rows[0])
	for _, r := range rows[1:] {
		if !hasColumns(r, cols) {
			return errMixed
		}
	}
	s.mu.Lock()
	t := s.tables[table]
	s.mu.Unlock()

	// Column list: binary columns travel as hex and bit columns as numbers,
	// through user variables.
	targets := make([]string, len(cols))
	var sets []string
	kinds := make([]byte, len(cols)) // 'x' hex, 'b' bit, 0 plain
	for i, c := range cols {
		q := mysqlsrc.QuoteIdent(c)
		targets[i] = q
		col, _ := t.Column(c)
		switch {
		case col.Kind == cdc.KindBytes:
			kinds[i] = 'x'
			targets[i] = "@v" + strconv.Itoa(i)
			sets = append(sets, q+" = UNHEX(@v"+strconv.Itoa(i)+")")
		case col.Kind == cdc.KindUint && strings.HasPrefix(strings.ToLower(col.Type), "bit"):
			kinds[i] = 'b'
			targets[i] = "@v" + strconv.Itoa(i)
			sets = append(sets, q+" = CAST(@v"+strconv.Itoa(i)+" AS UNSIGNED)")
		}
	}

	var buf bytes.Buffer
	buf.Grow(len(rows) * 128)
	for _, r := range rows {
		for i, c := range cols {
			if i > 0 {
				buf.WriteByte('\t')
			}
			if err := writeField(&buf, r[c], kinds[i]); err != nil {
				return fmt.Errorf("column %s: %w", c, err)
			}
		}
		buf.WriteByte('\n')
	}

	name := "understudy-" + strconv.FormatUint(loadSeq.Add(1), 10)
	driver.RegisterReaderHandler(name, func() io.Reader { return bytes.NewReader(buf.Bytes()) })
	defer driver.DeregisterReaderHandler(name)
	q := "LOAD DATA LOCAL INFILE 'Reader::" + name + "' REPLACE INTO TABLE " + s.targetName(table) +
		" CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (" +
		strings.Join(targets, ", ") + ")"
	if len(sets) > 0 {
		q += " SET " + strings.Join(sets, ", ")
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, q); err != nil {
		var me *driver.MySQLError
		if errors.As(err, &me) && (me.Number == 1148 || me.Number == 3948 || me.Number == 2068) {
			return errNoLocalInfile
		}
		return err
	}
	var warnings int
	if err := conn.QueryRowContext(ctx, "SELECT @@warning_count").Scan(&warnings); err != nil {
		return err
	}
	if warnings > 0 {
		var level, msg string
		var code int
		if err := conn.QueryRowContext(ctx, "SHOW WARNINGS LIMIT 1").Scan(&level, &code, &msg); err != nil {
			return fmt.Errorf("LOAD DATA reported %d warnings", warnings)
		}
		return fmt.Errorf("LOAD DATA reported %d warnings, the first %s %d", warnings, level, code)
	}
	return nil
}

var errMixed = errors.New("rows with different columns")

// writeField appends one value in LOAD DATA's default text format: \N for NULL,
// backslash escapes for the separators, hex for binary columns.
func writeField(buf *bytes.Buffer, v any, kind byte) error {
	if v == nil {
		buf.WriteString(`\N`)
		return nil
	}
	ev, err := encode(v)
	if err != nil {
		return err
	}
	switch x := ev.(type) {
	case int64:
		buf.WriteString(strconv.FormatInt(x, 10))
	case uint64:
		buf.WriteString(strconv.FormatUint(x, 10))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return errors.New("not a finite number")
		}
		buf.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
	case []byte:
		if kind == 'x' {
			buf.WriteString(hex.EncodeToString(x))
		} else {
			escape(buf, string(x))
		}
	case string:
		if kind == 'x' {
			buf.WriteString(hex.EncodeToString([]byte(x)))
		} else {
			escape(buf, x)
		}
	default:
		return fmt.Errorf("cannot load a %T", ev)
	}
	return nil
}

func escape(buf *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			buf.WriteString(`\\`)
		case '\t':
			buf.WriteString(`\t`)
		case '\n':
			buf.WriteString(`\n`)
		case '\r':
			buf.WriteString(`\r`)
		case 0:
			buf.WriteString(`\0`)
		default:
			buf.WriteByte(c)
		}
	}
}
