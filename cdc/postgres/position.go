package postgres

import (
	"encoding/binary"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/understudy/understudy/cdc"
)

// LSN is a Postgres WAL position, the typed form of this source's cdc.Position.
// A Postgres commit LSN only grows, so positions never move backwards.
type LSN uint64

// Encode returns the position's bytes: 8 bytes, big endian, so that byte order is
// LSN order.
func (l LSN) Encode() cdc.Position {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(l))
	return b
}

// String renders the LSN the way Postgres does ("16/B374D848").
func (l LSN) String() string { return pglogrepl.LSN(l).String() }

// ParsePosition decodes a position written by Encode. A nil or empty position
// decodes to 0 (the start of the slot).
func ParsePosition(p cdc.Position) (LSN, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) != 8 {
		return 0, fmt.Errorf("postgres position must be 8 bytes, got %d (was it written by another source kind?)", len(p))
	}
	return LSN(binary.BigEndian.Uint64(p)), nil
}
