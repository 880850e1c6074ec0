package mysql_test

import (
	"testing"

	"github.com/understudy/understudy/cdc"
	"github.com/understudy/understudy/sinks/sinktest"
	"github.com/understudy/understudy/testenv"

	_ "github.com/understudy/understudy/sinks/mysql"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestSinkContract(t *testing.T) {
	my := testenv.MariaDB(t)
	sinktest.Run(t, sinktest.Env{
		NewTarget: func(t *testing.T) string { return my.URL(my.NewDatabaseName(t)) },
		NewForeignTarget: func(t *testing.T) string {
			name := my.NewDatabaseName(t)
			my.Exec(t, my.DSN(name), `CREATE TABLE precious (id int PRIMARY KEY)`, `INSERT INTO precious VALUES (1)`)
			return my.URL(name)
		},
		Types: map[cdc.Kind]string{
			cdc.KindInt: "bigint", cdc.KindString: "text", cdc.KindDecimal: "decimal(12,2)",
			cdc.KindBytes: "blob", cdc.KindBool: "tinyint(1)", cdc.KindTimestamp: "datetime(6)",
		},
		Table: func(name string) string { return "db." + name },
	})
}
