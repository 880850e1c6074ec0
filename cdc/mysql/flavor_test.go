package mysql

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/understudy/understudy/cdc"
)

// MySQL 5.7/8.x cannot be installed on the machines this project is tested on
// (Debian ships MariaDB only), so the MySQL-only paths are tested here with
// recorded server answers and constructed events. See docs/mysql.md, "What is
// tested where", for what these do not cover.

func TestFlavorFromVersion(t *testing.T) {
	for version, want := range map[string]string{
		"10.11.19-MariaDB-0+deb12u1-log":          FlavorMariaDB, // this machine's server
		"5.5.5-10.11.6-MariaDB":                   FlavorMariaDB, // through a proxy keeping the 5.5.5- prefix
		"10.6.16-MariaDB-1:10.6.16+maria~ubu2004": FlavorMariaDB,
		"5.7.44-log":              FlavorMySQL,
		"8.0.36":                  FlavorMySQL,
		"8.0.28-0ubuntu0.20.04.3": FlavorMySQL,
		"8.4.0":                   FlavorMySQL,
		"8.0.mysql_aurora.3.05.2": FlavorMySQL,
		"8.0.35-27":               FlavorMySQL, // Percona Server
	} {
		if got := flavorOf(version); got != want {
			t.Errorf("flavorOf(%q) = %s, want %s", version, got, want)
		}
	}
}

func nullStrings(v ...string) []sql.NullString {
	out := make([]sql.NullString, len(v))
	for i, s := range v {
		out[i] = sql.NullString{String: s, Valid: true}
	}
	return out
}

// TestMySQLMasterStatusPosition reads SHOW MASTER STATUS rows as MySQL 5.7/8.0
// (and 8.4's SHOW BINARY LOG STATUS) print them: the executed GTID set is wrapped
// after each comma, and empty when gtid_mode=OFF.
func TestMySQLMasterStatusPosition(t *testing.T) {
	cols := []string{"File", "Position", "Binlog_Do_DB", "Binlog_Ignore_DB", "Executed_Gtid_Set"}
	p := positionFromStatus(FlavorMySQL, cols, nullStrings("binlog.000003", "2645326", "", "",
		"3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,\n8a9c1f2e-1d2b-11ef-8f7a-0242ac120002:1-1049"))
	want := Position{Flavor: FlavorMySQL, File: "binlog.000003", Pos: 2645326,
		GTID: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,8a9c1f2e-1d2b-11ef-8f7a-0242ac120002:1-1049"}
	if p.String() != want.String() || p.Flavor != want.Flavor {
		t.Errorf("GTID position %+v, want %+v", p, want)
	}
	if _, err := gomysql.ParseGTIDSet(FlavorMySQL, p.GTID); err != nil {
		t.Errorf("the stream could not start from %q: %v", p.GTID, err)
	}

	off := positionFromStatus(FlavorMySQL, cols, nullStrings("mysql-bin.000012", "154", "", "", ""))
	if off.GTID != "" || off.String() != "mysql-bin.000012:154" {
		t.Errorf("gtid_mode=OFF position %+v (%s), want file+offset only", off, off)
	}
	// MySQL 5.7 without GTID columns at all.
	old := positionFromStatus(FlavorMySQL, cols[:4], nullStrings("mysql-bin.000001", "4", "", ""))
	if old.String() != "mysql-bin.000001:4" {
		t.Errorf("5.7 position %s", old)
	}
}

// TestMySQLGTIDPositionRoundTrip: a checkpoint with a MySQL GTID set survives
// Encode/Parse (with its schema history) and still parses as the set the binlog
// reader starts from; a MariaDB position never parses as MySQL's and vice versa.
func TestMySQLGTIDPositionRoundTrip(t *testing.T) {
	info := (&tableInfo{Table: cdc.Table{Name: "db.t", Key: []string{"id"},
		Columns: []cdc.Column{{Name: "id", Type: "bigint unsigned", Kind: cdc.KindUint}, {Name: "n", Type: "varchar(10)", Kind: cdc.KindString}}}}).init()
	p := Position{Flavor: FlavorMySQL, File: "binlog.000007", Pos: 1234,
		GTID:   "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:11-18,8a9c1f2e-1d2b-11ef-8f7a-0242ac120002:1-1049",
		Tables: map[string]*tableInfo{"db.t": info}}
	back, err := ParsePosition(p.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if back.GTID != p.GTID || back.File != p.File || back.Pos != p.Pos || back.Flavor != FlavorMySQL {
		t.Errorf("round trip: %+v", back)
	}
	if ti := back.Tables["db.t"]; ti == nil || len(ti.binlog) != 2 || ti.binlog[0].Kind != cdc.KindUint {
		t.Errorf("schema history after the round trip: %+v", ti)
	}
	set, err := gomysql.ParseGTIDSet(FlavorMySQL, back.GTID)
	if err != nil {
		t.Fatal(err)
	}
	// The syncer adds each transaction's GTID to the set it hands to XID events.
	if err := set.Update("8a9c1f2e-1d2b-11ef-8f7a-0242ac120002:1050"); err != nil {
		t.Fatal(err)
	}
	if got := set.String(); !strings.Contains(got, "8a9c1f2e-1d2b-11ef-8f7a-0242ac120002:1-1050") || !strings.Contains(got, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:11-18") {
		t.Errorf("GTID set after one more transaction: %s", got)
	}
	if _, err := gomysql.ParseGTIDSet(FlavorMySQL, "0-1-4711"); err == nil {
		t.Error("a MariaDB GTID parsed as a MySQL GTID set")
	}
	if _, err := gomysql.ParseGTIDSet(FlavorMariaDB, p.GTID); err == nil {
		t.Error("a MySQL GTID set parsed as a MariaDB GTID position")
	}
}

// TestCommitCheckpointsTheMySQLGTIDSetOfTheXID: a transaction end on a MySQL
// server checkpoints the GTID set the XID event carries (which includes that
// transaction) together with the file offset, and only there.
func TestCommitCheckpointsTheMySQLGTIDSetOfTheXID(t *testing.T) {
	src := &Source{flavor: FlavorMySQL, MaxBatch: 100}
	out := make(chan cdc.Batch, 4)
	st := &streamer_{src: src, out: out, cur: Position{Flavor: FlavorMySQL, File: "binlog.000002", Pos: 4},
		tables: map[string]*tableInfo{}}
	set, err := gomysql.ParseMysqlGTIDSet("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-42")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	xid := &replication.BinlogEvent{Header: &replication.EventHeader{EventType: replication.XID_EVENT, Timestamp: 1700000000, LogPos: 901},
		Event: &replication.XIDEvent{XID: 7, GSet: set}}
	if err := st.handle(ctx, xid); err != nil {
		t.Fatal(err)
	}
	b := <-out
	p, err := ParsePosition(b.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if p.GTID != "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-42" || p.File != "binlog.000002" || p.Pos != 901 || p.Flavor != FlavorMySQL {
		t.Errorf("commit position %+v", p)
	}
	if b.CommitTime.Unix() != 1700000000 {
		t.Errorf("commit time %s", b.CommitTime)
	}
	// A rotate moves the file; the next commit's offset is in the new file.
	rot := &replication.BinlogEvent{Header: &replication.EventHeader{EventType: replication.ROTATE_EVENT},
		Event: &replication.RotateEvent{NextLogName: []byte("binlog.000003"), Position: 4}}
	if err := st.handle(ctx, rot); err != nil {
		t.Fatal(err)
	}
	if err := set.Update("3e11fa47-71ca-11e1-9e33-c80aa9429562:43"); err != nil {
		t.Fatal(err)
	}
	xid.Header.LogPos = 310
	if err := st.handle(ctx, xid); err != nil {
		t.Fatal(err)
	}
	p, _ = ParsePosition((<-out).Commit)
	if p.String() != "gtid 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-43 binlog.000003:310" {
		t.Errorf("after a rotate: %s", p)
	}
}
