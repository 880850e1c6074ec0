package main

// The backends this build ships. Each registers itself under its URL schemes in
// init(); a scheme that is not imported here is reported as unavailable.
import (
	_ "github.com/understudy/understudy/cdc/mysql"
	_ "github.com/understudy/understudy/cdc/postgres"
	_ "github.com/understudy/understudy/checkpoint/file"
	_ "github.com/understudy/understudy/checkpoint/memory"
	_ "github.com/understudy/understudy/checkpoint/redis"
	_ "github.com/understudy/understudy/mapping/file"
	_ "github.com/understudy/understudy/mapping/memory"
	_ "github.com/understudy/understudy/mapping/redis"
	_ "github.com/understudy/understudy/sinks/mysql"
	_ "github.com/understudy/understudy/sinks/postgres"
)
