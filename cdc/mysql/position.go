package mysql

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/understudy/understudy/cdc"
)

// Position is this source's typed cdc.Position: a binlog file and offset, the
// server's GTID set at that point when it has GTIDs (MariaDB "0-1-7", MySQL
// "uuid:1-7"), and the selected tables' schema as of that point — the schema
// history the stream decodes row events with after a restart, since the live schema
// may already be newer than the binlog being replayed.
type Position struct {
	Flavor string `json:"flavor"`
	GTID   string `json:"gtid,omitempty"`
	File   string `json:"file,omitempty"`
	Pos    uint32 `json:"pos,omitempty"`
	// Tables is the schema of the selected tables at this position, by "db.table".
	Tables map[string]*tableInfo `json:"tables,omitempty"`
}

// Encode returns the position's bytes (JSON: the schema history makes it larger
// than a bare GTID, but it is written once per checkpoint).
func (p Position) Encode() cdc.Position {
	b, err := json.Marshal(p)
	if err != nil {
		panic(fmt.Sprintf("mysql position: %v", err)) // only plain strings and numbers
	}
	return b
}

// String renders the position for people: the GTID set and the file:offset.
func (p Position) String() string {
	var parts []string
	if p.GTID != "" {
		parts = append(parts, "gtid "+p.GTID)
	}
	if p.File != "" {
		parts = append(parts, fmt.Sprintf("%s:%d", p.File, p.Pos))
	}
	if len(parts) == 0 {
		return "(start)"
	}
	return strings.Join(parts, " ")
}

// ParsePosition decodes a position written by Encode. An empty position decodes to
// the zero Position.
func ParsePosition(b cdc.Position) (Position, error) {
	var p Position
	if len(b) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(b, &p); err != nil || (p.File == "" && p.GTID == "") {
		return Position{}, fmt.Errorf("mysql position does not parse (was it written by another source kind?)")
	}
	for _, t := range p.Tables {
		t.init()
	}
	return p, nil
}

// FormatPosition renders a position for `understudy status`.
func (s *Source) FormatPosition(pos cdc.Position) string {
	p, err := ParsePosition(pos)
	if err != nil {
		return fmt.Sprintf("%x", []byte(pos))
	}
	return p.String()
}

// SourceStatus reports the server's current binlog position and the binlog files
// it still holds, for `understudy status`.
func (s *Source) SourceStatus(ctx context.Context, pos cdc.Position) (string, error) {
	if err := s.connect(ctx); err != nil {
		return "", err
	}
	cur, err := s.currentPosition(ctx, s.db)
	if err != nil {
		return "", err
	}
	files, total, err := s.binlogFiles(ctx)
	if err != nil {
		return "", err
	}
	msg := fmt.Sprintf("server at %s; %d binlog files kept (%d bytes)", cur, len(files), total)
	if p, err := ParsePosition(pos); err == nil && p.File != "" && len(files) > 0 && p.File < files[0] {
		msg += "; the checkpoint's binlog " + p.File + " is purged: run `understudy reset`"
	}
	return msg, nil
}

// binlogFiles lists the server's binlog files (SHOW BINARY LOGS), oldest first.
func (s *Source) binlogFiles(ctx context.Context) ([]string, int64, error) {
	rows, err := s.db.QueryContext(ctx, "SHOW BINARY LOGS")
	if err != nil {
		return nil, 0, fmt.Errorf("mysql source %s: SHOW BINARY LOGS: %w", s.where(), err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var files []string
	var total int64
	for rows.Next() {
		vals := make([]any, len(cols))
		var name string
		var size int64
		vals[0], vals[1] = &name, &size
		for i := 2; i < len(cols); i++ {
			vals[i] = new(any)
		}
		if err := rows.Scan(vals...); err != nil {
			return nil, 0, err
		}
		files = append(files, name)
		total += size
	}
	return files, total, rows.Err()
}
