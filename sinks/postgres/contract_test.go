package postgres_test

import (
	"testing"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/sinks/sinktest"
	"github.com/understudy/understudy/testenv"

	_ "github.com/understudy/understudy/sinks/postgres"
)

func TestSinkContract(t *testing.T) {
	pg := testenv.Postgres(t)
	sinktest.Run(t, sinktest.Env{
		NewTarget: func(t *testing.T) string { return pg.NewDatabase(t) },
		NewForeignTarget: func(t *testing.T) string {
			dsn := pg.NewDatabase(t)
			pg.Exec(t, dsn, `CREATE TABLE precious (id int PRIMARY KEY); INSERT INTO precious VALUES (1)`)
			return dsn
		},
		Types: map[cdc.Kind]string{
			cdc.KindInt: "bigint", cdc.KindString: "text", cdc.KindDecimal: "numeric(12,2)",
			cdc.KindBytes: "bytea", cdc.KindBool: "boolean", cdc.KindTimestamp: "timestamp with time zone",
		},
		Table: func(name string) string { return "public." + name },
	})
}
