package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/understudy/understudy/cdc"
)

// pollInterval bounds how long the stream waits for a message before it checks
// whether a new Ack should be reported.
const pollInterval = time.Second

// Stream decodes the slot's pgoutput stream from `from` and sends one Batch per
// transaction (split into batches of at most MaxBatch changes, only the last with
// Commit). It reports to the server as flushed only positions passed to Ack, never
// what it merely received, so a crash replays everything not checkpointed.
func (s *Source) Stream(ctx context.Context, from cdc.Position, out chan<- cdc.Batch) error {
	if s.pool == nil {
		return errors.New("postgres source: Stream before Open")
	}
	start, err := ParsePosition(from)
	if err != nil {
		return err
	}
	exists, lost, err := s.slotState(ctx)
	if err != nil {
		return fmt.Errorf("postgres stream: %w", err)
	}
	if !exists || lost {
		return fmt.Errorf("replication slot %s is gone or lost its WAL: %w", s.name, cdc.ErrPositionLost)
	}
	conn, err := s.startReplication(ctx, start)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	st := &streamer{src: s, conn: conn, out: out, rels: map[uint32]*relation{}}
	return st.run(ctx)
}

// slotBusyWait bounds how long Stream waits for a slot still held by a previous
// walsender: after a crash or kill -9 of understudy the old walsender keeps the slot
// until Postgres notices the dead connection.
const slotBusyWait = 60 * time.Second

// startReplication connects and starts streaming from start, retrying while the
// slot is still active for a previous (dead) session.
func (s *Source) startReplication(ctx context.Context, start LSN) (*pgconn.PgConn, error) {
	deadline := time.Now().Add(slotBusyWait)
	for {
		conn, err := s.connectReplication(ctx)
		if err != nil {
			return nil, err
		}
		err = pglogrepl.StartReplication(ctx, conn, s.name, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{
			Mode: pglogrepl.LogicalReplication,
			PluginArgs: []string{
				"proto_version '1'",
				"publication_names '" + s.name + "'", // [a-z0-9_] only, safe to quote
			},
		})
		if err == nil {
			return conn, nil
		}
		conn.Close(context.Background())
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "55006" && time.Now().Before(deadline) { // object_in_use
			select {
			case <-time.After(250 * time.Millisecond):
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return nil, fmt.Errorf("postgres stream: start replication from %s: %w", start, err)
	}
}

// relation is the stream's view of one table, from its last RelationMessage.
type relation struct {
	table cdc.Table
	types []*pgType
	key   []int // indexes into table.Columns of the key columns
	// ignored marks a table that is not selected: the publication can still send
	// changes to a table removed from the config (WAL written before the
	// publication changed). They must never reach the transformer, which has no
	// rules for them, nor the target.
	ignored bool
}

// pollDeadline is the deadline of the stream's receives: one serves every
// message until it passes, then the next pollInterval starts. A context (and its
// timer) per message cost ~4% of the CPU of a busy stream.
type pollDeadline struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (d *pollDeadline) context(parent context.Context) context.Context {
	if d.ctx == nil || d.ctx.Err() != nil {
		d.stop()
		d.ctx, d.cancel = context.WithTimeout(parent, pollInterval)
	}
	return d.ctx
}

func (d *pollDeadline) stop() {
	if d.cancel != nil {
		d.cancel()
	}
}

type streamer struct {
	src  *Source
	conn *pgconn.PgConn
	out  chan<- cdc.Batch
	rels map[uint32]*relation

	// The transaction being decoded.
	inTxn      bool
	commitTime time.Time
	pending    []cdc.Change
	schema     []cdc.Table // relation changes to announce with the next batch

	// lastEmitted is the Commit of the last batch sent out; reported is the flush
	// position last sent to the server.
	lastEmitted LSN
	reported    LSN
	nextStatus  time.Time
}

func (st *streamer) run(ctx context.Context) error {
	st.nextStatus = time.Now().Add(st.src.StatusInterval)
	var poll pollDeadline
	defer poll.stop()
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Report promptly after an Ack so the server can recycle WAL, and at
		// least every StatusInterval so it does not time us out.
		if LSN(st.src.acked.Load()) > st.reported || time.Now().After(st.nextStatus) {
			if err := st.sendStatus(0); err != nil {
				return err
			}
		}
		msg, err := st.conn.ReceiveMessage(poll.context(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("postgres stream: connection lost: %w", err)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if err := st.handleCopyData(ctx, m.Data); err != nil {
				return err
			}
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("postgres stream: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyDone:
			return errors.New("postgres stream: server ended replication")
		}
	}
}

// sendStatus reports the flush position: the last Ack'ed LSN, or walEnd when the
// heartbeat rule allows it (walEnd 0 = no heartbeat).
func (st *streamer) sendStatus(walEnd LSN) error {
	flush := LSN(st.src.acked.Load())
	// Heartbeat. On an idle or filtered database no commit of ours arrives, so
	// acks stop and the slot would pin WAL forever. When every batch we emitted
	// has been acknowledged and no transaction is half-decoded, everything up to
	// the keepalive's WAL end was either acknowledged or contains no change of a
	// published table (the server sends keepalives in stream order, after all data
	// before that point), so confirming it cannot skip anything a restart needs.
	// The checkpoint keeps its older position; restarting from it is harmless,
	// the server resumes at the confirmed position.
	if walEnd > flush && !st.inTxn && flush >= st.lastEmitted {
		flush = walEnd
	}
	if flush == 0 {
		flush = st.reported
	}
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), st.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(flush),
		WALFlushPosition: pglogrepl.LSN(flush),
		WALApplyPosition: pglogrepl.LSN(flush),
	})
	if err != nil {
		return fmt.Errorf("postgres stream: send status: %w", err)
	}
	if flush > st.reported {
		st.reported = flush
	}
	st.nextStatus = time.Now().Add(st.src.StatusInterval)
	return nil
}

func (st *streamer) handleCopyData(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("postgres stream: %w", err)
		}
		if ka.ReplyRequested {
			return st.sendStatus(LSN(ka.ServerWALEnd))
		}
		// Even unrequested keepalives let an idle slot advance (see sendStatus).
		if !st.inTxn && LSN(st.src.acked.Load()) >= st.lastEmitted && LSN(ka.ServerWALEnd) > st.reported {
			return st.sendStatus(LSN(ka.ServerWALEnd))
		}
		return nil
	case pglogrepl.XLogDataByteID:
		x, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("postgres stream: %w", err)
		}
		msg, err := pglogrepl.Parse(x.WALData)
		if err != nil {
			return fmt.Errorf("postgres stream: decode pgoutput at %s: %w", x.WALStart, err)
		}
		return st.handle(ctx, msg)
	}
	return nil
}

func (st *streamer) handle(ctx context.Context, msg pglogrepl.Message) error {
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		st.inTxn = true
		st.commitTime = m.CommitTime.UTC()
		st.pending = st.pending[:0]
	case *pglogrepl.CommitMessage:
		st.inTxn = false
		if len(st.pending) == 0 && len(st.schema) == 0 {
			// Nothing of ours in it: no batch. The heartbeat advances the slot.
			return nil
		}
		pos := LSN(m.TransactionEndLSN).Encode()
		if n := len(st.pending); n > 0 {
			st.pending[n-1].Position = pos
		}
		if err := st.emit(ctx, pos); err != nil {
			return err
		}
		st.lastEmitted = LSN(m.TransactionEndLSN)
	case *pglogrepl.RelationMessage:
		return st.relation(ctx, m)
	case *pglogrepl.TypeMessage:
		// A user type is (re)described, e.g. an enum gained a label: resolve it
		// again on next use.
		st.src.types.forget(m.DataType)
	case *pglogrepl.InsertMessage:
		rel, err := st.rel(m.RelationID)
		if err != nil {
			return err
		}
		if rel.ignored {
			return nil
		}
		after, unchanged, err := st.tuple(rel, m.Tuple)
		if err != nil {
			return err
		}
		return st.add(ctx, cdc.Change{Table: rel.table.Name, Op: cdc.Insert, Key: keyOf(rel, after), After: after, Unchanged: unchanged})
	case *pglogrepl.UpdateMessage:
		rel, err := st.rel(m.RelationID)
		if err != nil {
			return err
		}
		if rel.ignored {
			return nil
		}
		after, unchanged, err := st.tuple(rel, m.NewTuple)
		if err != nil {
			return err
		}
		c := cdc.Change{Table: rel.table.Name, Op: cdc.Update, After: after, Unchanged: unchanged, Key: keyOf(rel, after)}
		if m.OldTuple != nil {
			// 'K' (the key changed) or 'O' (REPLICA IDENTITY FULL): the old key
			// names the row to change.
			old, _, err := st.tuple(rel, m.OldTuple)
			if err != nil {
				return err
			}
			c.Key = keyOf(rel, old)
			if m.OldTupleType == pglogrepl.UpdateMessageTupleTypeOld {
				c.Before = old
			}
		}
		return st.add(ctx, c)
	case *pglogrepl.DeleteMessage:
		rel, err := st.rel(m.RelationID)
		if err != nil {
			return err
		}
		if rel.ignored {
			return nil
		}
		old, _, err := st.tuple(rel, m.OldTuple)
		if err != nil {
			return err
		}
		c := cdc.Change{Table: rel.table.Name, Op: cdc.Delete, Key: keyOf(rel, old)}
		if m.OldTupleType == pglogrepl.DeleteMessageTupleTypeOld {
			c.Before = old
		}
		return st.add(ctx, c)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			rel, err := st.rel(id)
			if err != nil {
				return err
			}
			if rel.ignored {
				continue
			}
			if err := st.add(ctx, cdc.Change{Table: rel.table.Name, Op: cdc.Truncate}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (st *streamer) rel(id uint32) (*relation, error) {
	r, ok := st.rels[id]
	if !ok {
		return nil, fmt.Errorf("postgres stream: change for relation %d before its RelationMessage", id)
	}
	return r, nil
}

// relation caches a RelationMessage. When the table's columns differ from what
// the pipeline last saw (Open's schema or an earlier RelationMessage), the new
// description is announced in the next batch's Schema, ahead of its changes.
func (st *streamer) relation(ctx context.Context, m *pglogrepl.RelationMessage) error {
	name := m.Namespace + "." + m.RelationName
	if _, selected := st.src.table(name); !selected {
		st.rels[m.RelationID] = &relation{table: cdc.Table{Name: name}, ignored: true}
		return nil
	}
	prev, known := st.previous(m.RelationID, name)
	r := &relation{table: cdc.Table{Name: name}}
	var changed bool
	var needType []int // new columns, whose type name must be looked up
	for i, c := range m.Columns {
		t, err := st.src.types.resolve(ctx, c.DataType)
		if err != nil {
			return fmt.Errorf("postgres stream: %s.%s: %w", name, c.Name, err)
		}
		col := cdc.Column{Name: c.Name, Kind: t.Kind, Nullable: true, Enum: t.Enum}
		if pc, ok := prev.Column(c.Name); ok && known {
			col.Type, col.Nullable = pc.Type, pc.Nullable
			if pc.Kind != t.Kind || !slices.Equal(pc.Enum, t.Enum) {
				changed = true
			}
			if pi := slices.IndexFunc(prev.Columns, func(x cdc.Column) bool { return x.Name == c.Name }); pi != i {
				changed = true
			}
		} else {
			changed = true
			needType = append(needType, i)
		}
		r.table.Columns = append(r.table.Columns, col)
		r.types = append(r.types, t)
	}
	if len(m.Columns) != len(prev.Columns) {
		changed = true
	}
	// Name new columns' types the way Open does (format_type, qualified).
	for _, i := range needType {
		c := m.Columns[i]
		typ, err := st.formatType(ctx, c.DataType, c.TypeModifier)
		if err != nil {
			return fmt.Errorf("postgres stream: %s.%s: %w", name, c.Name, err)
		}
		r.table.Columns[i].Type = typ
	}
	// The key stays the one Open found (the primary key); the flags of the
	// message mark the replica identity, which is the same columns or FULL.
	r.table.Key = prev.Key
	if len(r.table.Key) == 0 {
		for _, c := range m.Columns {
			if c.Flags&1 != 0 {
				r.table.Key = append(r.table.Key, c.Name)
			}
		}
	}
	for _, k := range r.table.Key {
		i := slices.IndexFunc(r.table.Columns, func(c cdc.Column) bool { return c.Name == k })
		if i < 0 {
			return fmt.Errorf("postgres stream: key column %s of %s is missing from the stream", k, name)
		}
		r.key = append(r.key, i)
	}
	st.rels[m.RelationID] = r
	if changed {
		st.schema = append(st.schema, r.table)
		// Keep the source's own view current so a later snapshot or a restarted
		// stream compares against this description.
		st.src.mu.Lock()
		if info, ok := st.src.tables[name]; ok {
			st.src.tables[name] = &tableInfo{table: r.table, oid: info.oid, types: r.types}
		}
		st.src.mu.Unlock()
	}
	return nil
}

// previous returns the table description the pipeline last saw.
func (st *streamer) previous(id uint32, name string) (cdc.Table, bool) {
	if r, ok := st.rels[id]; ok {
		return r.table, true
	}
	if info, ok := st.src.table(name); ok {
		return info.table, true
	}
	return cdc.Table{Name: name}, false
}

func (st *streamer) formatType(ctx context.Context, oid uint32, typmod int32) (string, error) {
	tx, err := st.src.pool.Begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, "SET LOCAL search_path = pg_catalog"); err != nil {
		return "", err
	}
	var s string
	err = tx.QueryRow(ctx, "SELECT format_type($1, $2)", oid, typmod).Scan(&s)
	return s, err
}

// tuple decodes a TupleData. Unchanged TOAST values ('u') are not sent by
// Postgres; they are left out of the row and listed in unchanged.
func (st *streamer) tuple(rel *relation, t *pglogrepl.TupleData) (cdc.Row, []string, error) {
	if t == nil {
		return nil, nil, nil
	}
	if len(t.Columns) != len(rel.table.Columns) {
		return nil, nil, fmt.Errorf("postgres stream: %s tuple has %d columns, relation has %d", rel.table.Name, len(t.Columns), len(rel.table.Columns))
	}
	row := make(cdc.Row, len(t.Columns))
	var unchanged []string
	for i, c := range t.Columns {
		name := rel.table.Columns[i].Name
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			row[name] = nil
		case pglogrepl.TupleDataTypeToast:
			unchanged = append(unchanged, name)
		case pglogrepl.TupleDataTypeText:
			v, err := decodeText(rel.types[i], c.Data)
			if err != nil {
				return nil, nil, fmt.Errorf("postgres stream: %s.%s: %w", rel.table.Name, name, err)
			}
			row[name] = v
		default:
			return nil, nil, fmt.Errorf("postgres stream: %s.%s: unexpected tuple format %q", rel.table.Name, name, c.DataType)
		}
	}
	return row, unchanged, nil
}

// keyOf picks the key columns out of a row.
func keyOf(rel *relation, row cdc.Row) cdc.Row {
	if row == nil {
		return nil
	}
	k := make(cdc.Row, len(rel.key))
	for _, i := range rel.key {
		n := rel.table.Columns[i].Name
		k[n] = row[n]
	}
	return k
}

// add appends a change to the transaction, flushing a partial batch (Commit nil)
// when it reaches MaxBatch so a large transaction is never held in memory whole.
func (st *streamer) add(ctx context.Context, c cdc.Change) error {
	c.CommitTime = st.commitTime
	st.pending = append(st.pending, c)
	if len(st.pending) >= st.src.MaxBatch {
		return st.emit(ctx, nil)
	}
	return nil
}

// emit sends the pending changes. While the pipeline applies backpressure it
// keeps answering the server, which would otherwise drop an idle-looking
// connection after wal_sender_timeout.
func (st *streamer) emit(ctx context.Context, commit cdc.Position) error {
	b := cdc.Batch{Schema: st.schema, Changes: st.pending, Commit: commit}
	if commit != nil {
		b.CommitTime = st.commitTime
	}
	st.schema = nil
	st.pending = make([]cdc.Change, 0, min(st.src.MaxBatch, 64))
	tick := time.NewTicker(st.src.StatusInterval)
	defer tick.Stop()
	for {
		select {
		case st.out <- b:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := st.sendStatus(0); err != nil {
				return err
			}
		}
	}
}
