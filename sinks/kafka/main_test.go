package kafka_test

import (
	"testing"

	"github.com/understudy/understudy/testenv"
)

// TestMain stops the servers testenv started (Postgres, MariaDB) when the tests end.
func TestMain(m *testing.M) { testenv.Main(m) }
