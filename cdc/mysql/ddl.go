package mysql

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/pingcap/tidb/pkg/parser"
	"github.com/pingcap/tidb/pkg/parser/ast"
	pmysql "github.com/pingcap/tidb/pkg/parser/mysql"
	_ "github.com/pingcap/tidb/pkg/parser/test_driver" // literal values in parsed DDL (defaults)
	ptypes "github.com/pingcap/tidb/pkg/parser/types"

	"github.com/understudy/understudy/cdc"
)

// The schema history follows ALTER TABLE and CREATE TABLE by parsing them (with
// the TiDB parser that go-mysql depends on) and applying each statement to the
// table *as the history has it at that point of the binlog*. Reading
// information_schema instead would give the schema of now, which is a later one
// when a stopped sync replays two DDLs of one table.
//
// A statement that does not parse (MariaDB-only syntax, types the parser does not
// know such as inet6, uuid and the spatial types) or that holds something not
// modelled here is an errUnmodeled: the stream then re-reads the table from
// information_schema as before (exact while live; a replay is checked by
// checkShape).

// errUnmodeled says why a DDL statement is left to information_schema. Its text
// is fixed wording and identifiers, never a literal from the statement.
type errUnmodeled struct{ why string }

func (e errUnmodeled) Error() string { return e.why }

func unmodeled(format string, args ...any) error {
	return errUnmodeled{fmt.Sprintf(format, args...)}
}

// mariadbOnly removes the MariaDB words of a DDL head that the parser does not
// know and that do not change the resulting schema (CREATE OR REPLACE is handled
// by the caller).
var mariadbOnly = regexp.MustCompile(`(?i)\b(?:OR\s+REPLACE|ONLINE)\s+`)

// national finds NCHAR/NATIONAL types, which the parser accepts but does not
// mark with their charset (utf8mb3).
var national = regexp.MustCompile(`(?i)\b(?:NATIONAL|NCHAR|NVARCHAR)\b`)

// parseDDL parses one ALTER or CREATE TABLE statement. head is the statement up
// to its table name (ddlTable's match), rest the remainder.
func (st *streamer_) parseDDL(head, rest string) (ast.StmtNode, error) {
	q := mariadbOnly.ReplaceAllString(head, "") + rest
	if national.MatchString(q) {
		return nil, unmodeled("NATIONAL character types")
	}
	if st.parser == nil {
		st.parser = parser.New()
	}
	// Only the modes that change how the statement is tokenized: " quoting
	// identifiers, \ not escaping, || concatenating, spaces after function names.
	const lexical = pmysql.ModeANSIQuotes | pmysql.ModeNoBackslashEscapes | pmysql.ModePipesAsConcat | pmysql.ModeIgnoreSpace | pmysql.ModeHighNotPrecedence
	st.parser.SetSQLMode(pmysql.SQLMode(st.sqlMode) & lexical)
	stmts, _, err := st.parser.Parse(q, "", "")
	if err != nil {
		// The parser's message quotes the statement, which may hold literals.
		return nil, unmodeled("the statement does not parse")
	}
	if len(stmts) != 1 {
		return nil, unmodeled("%d statements in one event", len(stmts))
	}
	return stmts[0], nil
}

// created describes the table a CREATE TABLE statement creates. like is the
// history entry of a CREATE TABLE … LIKE's source table, when it has one.
func (s *Source) created(ctx context.Context, name, db string, stmt *ast.CreateTableStmt, like func(string) (*tableInfo, bool)) (*tableInfo, error) {
	if stmt.Select != nil {
		return nil, unmodeled("CREATE TABLE … SELECT")
	}
	if stmt.ReferTable != nil {
		from := qualified(stmt.ReferTable, db)
		src, ok := like(from)
		if !ok {
			return nil, unmodeled("CREATE TABLE … LIKE a table outside the schema history")
		}
		info := src.clone()
		info.Table.Name = name
		return info.init(), nil
	}
	info := &tableInfo{Table: cdc.Table{Name: name}}
	for _, o := range stmt.Options {
		if err := s.tableOption(info, o); err != nil {
			return nil, err
		}
	}
	if info.Charset == "" {
		tdb, _ := cdc.SplitName(name)
		var collation string
		err := s.db.QueryRowContext(ctx, `SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`, tdb).Scan(&collation)
		if err != nil {
			return nil, unmodeled("the database's default charset is unknown")
		}
		info.Charset = s.charsetOf(collation)
	}
	for _, def := range stmt.Cols {
		if _, ok := info.index(def.Name.Name.O); ok {
			return nil, unmodeled("column %s defined twice", def.Name.Name.O)
		}
		if err := s.addColumn(info, def, nil); err != nil {
			return nil, err
		}
	}
	for _, c := range stmt.Constraints {
		if err := addConstraint(info, c); err != nil {
			return nil, err
		}
	}
	return info.finish()
}

// altered applies ALTER TABLE's specifications, in order, to a copy of old. It
// returns the new name of a RENAME TO among them ("" when none; an unqualified
// one is in db, the statement's default database); the caller moves the entry.
func (s *Source) altered(old *tableInfo, db string, stmt *ast.AlterTableStmt) (*tableInfo, string, error) {
	info := old.clone()
	renameTo := ""
	for _, spec := range stmt.Specs {
		switch spec.Tp {
		case ast.AlterTableOption:
			for _, o := range spec.Options {
				if err := s.tableOption(info, o); err != nil {
					return nil, "", err
				}
			}
		case ast.AlterTableAddColumns:
			for i, def := range spec.NewColumns {
				if _, ok := info.index(def.Name.Name.O); ok {
					if spec.IfNotExists {
						continue
					}
					return nil, "", unmodeled("ADD COLUMN of an existing column %s", def.Name.Name.O)
				}
				var pos *ast.ColumnPosition
				if i == 0 && len(spec.NewColumns) == 1 {
					pos = spec.Position
				}
				if err := s.addColumn(info, def, pos); err != nil {
					return nil, "", err
				}
			}
			for _, c := range spec.NewConstraints {
				if err := addConstraint(info, c); err != nil {
					return nil, "", err
				}
			}
		case ast.AlterTableDropColumn:
			n := spec.OldColumnName.Name.O
			i, ok := info.index(n)
			if !ok {
				if spec.IfExists {
					continue
				}
				return nil, "", unmodeled("DROP COLUMN of an unknown column %s", n)
			}
			info.dropColumn(i)
		case ast.AlterTableModifyColumn, ast.AlterTableChangeColumn:
			def := spec.NewColumns[0]
			from := def.Name.Name.O
			if spec.Tp == ast.AlterTableChangeColumn {
				from = spec.OldColumnName.Name.O
			}
			i, ok := info.index(from)
			if !ok {
				if spec.IfExists {
					continue
				}
				return nil, "", unmodeled("MODIFY/CHANGE of an unknown column %s", from)
			}
			if j, ok := info.index(def.Name.Name.O); ok && j != i {
				return nil, "", unmodeled("CHANGE COLUMN to an existing name %s", def.Name.Name.O)
			}
			oldName := info.Table.Columns[i].Name
			pos := spec.Position
			if pos == nil || pos.Tp == ast.ColumnPositionNone {
				after := ""
				if i > 0 {
					after = info.Table.Columns[i-1].Name
				}
				pos = &ast.ColumnPosition{Tp: ast.ColumnPositionFirst}
				if after != "" {
					pos = &ast.ColumnPosition{Tp: ast.ColumnPositionAfter, RelativeColumn: &ast.ColumnName{Name: ast.NewCIStr(after)}}
				}
			}
			// The column keeps its place in the key, under its new name.
			key := append([]string(nil), info.Table.Key...)
			for k := range key {
				if strings.EqualFold(key[k], oldName) {
					key[k] = def.Name.Name.O
				}
			}
			info.dropColumn(i)
			info.Table.Key = key
			if err := s.addColumn(info, def, pos); err != nil {
				return nil, "", err
			}
		case ast.AlterTableRenameColumn:
			from, to := spec.OldColumnName.Name.O, spec.NewColumnName.Name.O
			i, ok := info.index(from)
			if !ok {
				return nil, "", unmodeled("RENAME COLUMN of an unknown column %s", from)
			}
			if j, ok := info.index(to); ok && j != i {
				return nil, "", unmodeled("RENAME COLUMN to an existing name %s", to)
			}
			info.renameColumn(i, to)
		case ast.AlterTableAddConstraint:
			if err := addConstraint(info, spec.Constraint); err != nil {
				return nil, "", err
			}
		case ast.AlterTableDropPrimaryKey:
			info.Table.Key = nil
		case ast.AlterTableRenameTable:
			renameTo = qualified(spec.NewTable, db)
		case ast.AlterTableDropIndex, ast.AlterTableDropForeignKey, ast.AlterTableRenameIndex,
			ast.AlterTableAlterColumn, ast.AlterTableLock, ast.AlterTableAlgorithm, ast.AlterTableForce,
			ast.AlterTableEnableKeys, ast.AlterTableDisableKeys, ast.AlterTableIndexInvisible:
			// Indexes, defaults and how the server runs the ALTER: no change to the
			// columns, their types or the primary key.
		default:
			return nil, "", unmodeled("ALTER TABLE specification %d", spec.Tp)
		}
	}
	info, err := info.finish()
	return info, renameTo, err
}

// tableOption applies a CREATE/ALTER TABLE option: only the default charset
// matters to the history; CONVERT TO CHARACTER SET changes every column.
func (s *Source) tableOption(info *tableInfo, o *ast.TableOption) error {
	switch o.Tp {
	case ast.TableOptionCharset:
		if o.UintValue == ast.TableOptionCharsetWithConvertTo {
			return unmodeled("CONVERT TO CHARACTER SET")
		}
		if o.Default || o.StrValue == "" {
			return unmodeled("CHARACTER SET DEFAULT")
		}
		info.Charset = s.charsetName(o.StrValue)
	case ast.TableOptionCollate:
		if o.UintValue == ast.TableOptionCharsetWithConvertTo {
			return unmodeled("CONVERT TO CHARACTER SET")
		}
		info.Charset = s.charsetOf(o.StrValue)
	case ast.TableOptionCheckSum, ast.TableOptionCompression, ast.TableOptionKeyBlockSize, ast.TableOptionMaxRows,
		ast.TableOptionMinRows, ast.TableOptionDelayKeyWrite, ast.TableOptionRowFormat, ast.TableOptionStatsPersistent,
		ast.TableOptionStatsAutoRecalc, ast.TableOptionStatsSamplePages, ast.TableOptionPackKeys, ast.TableOptionTableCheckSum,
		ast.TableOptionEngine, ast.TableOptionAutoIncrement, ast.TableOptionComment, ast.TableOptionAvgRowLength,
		ast.TableOptionEncryption, ast.TableOptionPageChecksum, ast.TableOptionPageCompressed,
		ast.TableOptionPageCompressionLevel, ast.TableOptionTransactional, ast.TableOptionTablespace:
	default:
		return unmodeled("table option %d", o.Tp)
	}
	return nil
}

// addColumn adds def to info at pos (nil or none: last), with a PRIMARY KEY
// column option making it the key.
func (s *Source) addColumn(info *tableInfo, def *ast.ColumnDef, pos *ast.ColumnPosition) error {
	name := def.Name.Name.O
	ft := def.Tp
	charset := ""
	explicitNull, notNull, key := false, false, false
	if cs := ft.GetCharset(); cs != "" {
		charset = s.charsetName(cs)
	} else if co := ft.GetCollate(); co != "" {
		charset = s.charsetOf(co)
	}
	for _, o := range def.Options {
		switch o.Tp {
		case ast.ColumnOptionNotNull:
			notNull = true
		case ast.ColumnOptionNull:
			explicitNull = true
		case ast.ColumnOptionPrimaryKey:
			key = true
		case ast.ColumnOptionCollate:
			if ft.GetCharset() == "" {
				charset = s.charsetOf(o.StrValue)
			}
		case ast.ColumnOptionAutoIncrement, ast.ColumnOptionDefaultValue, ast.ColumnOptionUniqKey,
			ast.ColumnOptionOnUpdate, ast.ColumnOptionComment, ast.ColumnOptionGenerated,
			ast.ColumnOptionReference, ast.ColumnOptionColumnFormat, ast.ColumnOptionStorage:
		default:
			// CHECK among them: MariaDB's json_valid() check makes a longtext JSON.
			return unmodeled("column option %d of %s", o.Tp, name)
		}
	}
	if charset == "" {
		charset = info.Charset
	}
	colType, charset, err := s.columnType(ft, charset)
	if err != nil {
		return unmodeled("column %s: %v", name, err)
	}
	nullable := !notNull && !key
	if ft.GetType() == pmysql.TypeTimestamp && !notNull && !explicitNull && !key {
		switch s.tsNullable {
		case 0:
			return unmodeled("timestamp column %s without NULL or NOT NULL", name)
		case -1:
			nullable = false // explicit_defaults_for_timestamp=OFF
		}
	}
	c := info.column(name, colType, nullable, charset)
	at := len(info.Table.Columns)
	if pos != nil {
		switch pos.Tp {
		case ast.ColumnPositionFirst:
			at = 0
		case ast.ColumnPositionAfter:
			i, ok := info.index(pos.RelativeColumn.Name.O)
			if !ok {
				return unmodeled("AFTER an unknown column %s", pos.RelativeColumn.Name.O)
			}
			at = i + 1
		}
	}
	info.Table.Columns = append(info.Table.Columns, cdc.Column{})
	copy(info.Table.Columns[at+1:], info.Table.Columns[at:])
	info.Table.Columns[at] = c
	if key {
		if len(info.Table.Key) > 0 {
			return unmodeled("a second primary key")
		}
		info.Table.Key = []string{name}
	}
	return nil
}

// addConstraint applies a table constraint: PRIMARY KEY sets the key; other
// indexes and foreign keys leave the history alone; CHECK is not modelled
// (MariaDB's json_valid() check makes a longtext JSON).
func addConstraint(info *tableInfo, c *ast.Constraint) error {
	switch c.Tp {
	case ast.ConstraintPrimaryKey:
		if len(info.Table.Key) > 0 {
			return unmodeled("a second primary key")
		}
		var key []string
		for _, k := range c.Keys {
			if k.Expr != nil || k.Column == nil {
				return unmodeled("a primary key on an expression")
			}
			i, ok := info.index(k.Column.Name.O)
			if !ok {
				return unmodeled("a primary key on an unknown column %s", k.Column.Name.O)
			}
			key = append(key, info.Table.Columns[i].Name)
		}
		info.Table.Key = key
	case ast.ConstraintKey, ast.ConstraintIndex, ast.ConstraintUniq, ast.ConstraintUniqKey,
		ast.ConstraintUniqIndex, ast.ConstraintForeignKey, ast.ConstraintFulltext:
	default:
		return unmodeled("constraint type %d", c.Tp)
	}
	return nil
}

// columnType renders a parsed column type as information_schema's COLUMN_TYPE
// and CHARACTER_SET_NAME would show it on this server, given the charset the
// column gets (explicit, or the table's default).
func (s *Source) columnType(ft *ptypes.FieldType, charset string) (string, string, error) {
	flen, dec := ft.GetFlen(), ft.GetDecimal()
	unsigned := pmysql.HasUnsignedFlag(ft.GetFlag())
	zerofill := pmysql.HasZerofillFlag(ft.GetFlag())
	sign := ""
	switch {
	case zerofill:
		sign = " unsigned zerofill"
	case unsigned:
		sign = " unsigned"
	}
	binaryCS := ft.GetCharset() == "binary" || charset == "binary"
	text := func(t string) (string, string, error) {
		if charset == "" {
			return "", "", errors.New("the table's default charset is not in the schema history")
		}
		return t, charset, nil
	}
	switch tp := ft.GetType(); tp {
	case pmysql.TypeTiny, pmysql.TypeShort, pmysql.TypeInt24, pmysql.TypeLong, pmysql.TypeLonglong:
		data := map[byte]string{pmysql.TypeTiny: "tinyint", pmysql.TypeShort: "smallint", pmysql.TypeInt24: "mediumint",
			pmysql.TypeLong: "int", pmysql.TypeLonglong: "bigint"}[tp]
		width := flen
		if width <= 0 {
			width = intWidth(tp, unsigned || zerofill)
		}
		if s.intWidths || zerofill || (tp == pmysql.TypeTiny && flen == 1) {
			return fmt.Sprintf("%s(%d)%s", data, width, sign), "", nil
		}
		return data + sign, "", nil
	case pmysql.TypeYear:
		if s.intWidths {
			return "year(4)", "", nil
		}
		return "year", "", nil
	case pmysql.TypeBit:
		if flen <= 0 {
			flen = 1
		}
		return fmt.Sprintf("bit(%d)", flen), "", nil
	case pmysql.TypeNewDecimal:
		if flen <= 0 {
			flen = 10
		}
		if dec < 0 {
			dec = 0
		}
		return fmt.Sprintf("decimal(%d,%d)%s", flen, dec, sign), "", nil
	case pmysql.TypeFloat, pmysql.TypeDouble:
		data := "float"
		if tp == pmysql.TypeDouble {
			data = "double"
		}
		if flen > 0 && dec >= 0 {
			return fmt.Sprintf("%s(%d,%d)%s", data, flen, dec, sign), "", nil
		}
		return data + sign, "", nil
	case pmysql.TypeDate:
		return "date", "", nil
	case pmysql.TypeDatetime, pmysql.TypeTimestamp, pmysql.TypeDuration:
		data := map[byte]string{pmysql.TypeDatetime: "datetime", pmysql.TypeTimestamp: "timestamp", pmysql.TypeDuration: "time"}[tp]
		if dec > 0 {
			return fmt.Sprintf("%s(%d)", data, dec), "", nil
		}
		return data, "", nil
	case pmysql.TypeJSON:
		return "json", "", nil
	case pmysql.TypeString, pmysql.TypeVarchar, pmysql.TypeVarString:
		if flen < 0 {
			flen = 1
		}
		data := "char"
		if tp != pmysql.TypeString {
			data = "varchar"
		}
		if binaryCS {
			return fmt.Sprintf("%s(%d)", strings.Replace(data, "char", "binary", 1), flen), "", nil
		}
		return text(fmt.Sprintf("%s(%d)", data, flen))
	case pmysql.TypeTinyBlob, pmysql.TypeBlob, pmysql.TypeMediumBlob, pmysql.TypeLongBlob:
		if flen > 0 {
			return "", "", errors.New("TEXT(n)/BLOB(n) picks its type by the charset's width")
		}
		size := map[byte]string{pmysql.TypeTinyBlob: "tiny", pmysql.TypeBlob: "", pmysql.TypeMediumBlob: "medium", pmysql.TypeLongBlob: "long"}[tp]
		if binaryCS {
			return size + "blob", "", nil
		}
		return text(size + "text")
	case pmysql.TypeEnum, pmysql.TypeSet:
		data := "enum"
		if tp == pmysql.TypeSet {
			data = "set"
		}
		labels := make([]string, len(ft.GetElems()))
		for i, l := range ft.GetElems() {
			if ft.GetElemIsBinaryLit(i) {
				return "", "", errors.New("a binary literal label")
			}
			labels[i] = "'" + strings.ReplaceAll(strings.ReplaceAll(l, `\`, `\\`), "'", "''") + "'"
		}
		return text(data + "(" + strings.Join(labels, ",") + ")")
	}
	return "", "", fmt.Errorf("type %d", ft.GetType())
}

// intWidth is an integer type's default display width, as MySQL 5.x and MariaDB
// show it.
func intWidth(tp byte, unsigned bool) int {
	w := map[byte]int{pmysql.TypeTiny: 4, pmysql.TypeShort: 6, pmysql.TypeInt24: 9, pmysql.TypeLong: 11, pmysql.TypeLonglong: 20}[tp]
	if unsigned && tp != pmysql.TypeLonglong {
		w--
	}
	return w
}

// qualified returns "db.table" for a parsed table name; an unqualified one is in
// db, the statement's default database.
func qualified(tn *ast.TableName, db string) string {
	if tn.Schema.O != "" {
		db = tn.Schema.O
	}
	return db + "." + tn.Name.O
}

// clone copies a history entry for changing.
func (ti *tableInfo) clone() *tableInfo {
	c := &tableInfo{Table: ti.Table, Charset: ti.Charset}
	c.Table.Columns = append([]cdc.Column(nil), ti.Table.Columns...)
	c.Table.Key = append([]string(nil), ti.Table.Key...)
	c.Table.RenamedFrom = ""
	if ti.Charsets != nil {
		c.Charsets = make(map[string]string, len(ti.Charsets))
		for k, v := range ti.Charsets {
			c.Charsets[k] = v
		}
	}
	return c
}

// index finds a column by name; MySQL column names are case-insensitive.
func (ti *tableInfo) index(name string) (int, bool) {
	for i, c := range ti.Table.Columns {
		if strings.EqualFold(c.Name, name) {
			return i, true
		}
	}
	return -1, false
}

func (ti *tableInfo) keyIndex(name string) int {
	for i, k := range ti.Table.Key {
		if strings.EqualFold(k, name) {
			return i
		}
	}
	return -1
}

// dropColumn removes column i; it leaves the primary key too, which the server
// shrinks (and drops with its last column).
func (ti *tableInfo) dropColumn(i int) {
	name := ti.Table.Columns[i].Name
	ti.Table.Columns = append(ti.Table.Columns[:i:i], ti.Table.Columns[i+1:]...)
	delete(ti.Charsets, name)
	if k := ti.keyIndex(name); k >= 0 {
		ti.Table.Key = append(ti.Table.Key[:k:k], ti.Table.Key[k+1:]...)
	}
}

func (ti *tableInfo) renameColumn(i int, to string) {
	from := ti.Table.Columns[i].Name
	ti.Table.Columns[i].Name = to
	if cs, ok := ti.Charsets[from]; ok {
		delete(ti.Charsets, from)
		ti.Charsets[to] = cs
	}
	if k := ti.keyIndex(from); k >= 0 {
		ti.Table.Key[k] = to
	}
}

// finish checks a parsed table as describe checks a described one, and marks its
// key columns NOT NULL, as the server does.
func (ti *tableInfo) finish() (*tableInfo, error) {
	if len(ti.Table.Columns) == 0 {
		return nil, unmodeled("a table without columns")
	}
	if len(ti.Table.Key) == 0 {
		return nil, errNoKey
	}
	for _, k := range ti.Table.Key {
		i, _ := ti.index(k)
		ti.Table.Columns[i].Nullable = false
	}
	return ti.init(), nil
}

// errNoKey: the DDL leaves a selected table without primary key.
var errNoKey = errors.New("no primary key")
