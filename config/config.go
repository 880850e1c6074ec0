// Package config reads understudy's YAML configuration file: the deployment-wide
// settings (mapping key secret, mapping and checkpoint stores, metrics address) and
// one or more pipelines, each a production source, a test target, the tables to
// replicate and the anonymization rules.
//
// Every problem in a file is reported at once, each as "file:line: field: message"
// with the fix in the message, so a user fixes the file in one round.
//
// Secrets come from the environment: any scalar value may contain ${NAME} or
// ${NAME:-default}, expanded after YAML parsing so a variable's value can never
// change the file's structure. Expanded values are never echoed in errors.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/understudy/understudy/transform"
)

// MinMappingCache is the smallest mapping_cache accepted.
const MinMappingCache = 1000

// Config is one understudy deployment, as read from its YAML file. After Parse every
// default is filled in, so callers never look at an empty field for "unset".
type Config struct {
	// Path is the file the config was read from, for messages.
	Path string
	// Secret is the HMAC key of mapping keys (mapping.Key). It must come from the
	// environment (secret: ${UNDERSTUDY_SECRET}) and be at least MinSecretLen bytes.
	// Never log it; Config has no String method that would hide it.
	Secret string
	// Mappings is the mapping store URL: memory:, file:PATH, redis://, rediss://,
	// dynamodb://. Default: "file:<config dir>/understudy-mappings.db". A relative
	// file: path is resolved against the config file's directory, so the store
	// stays put whatever directory understudy is started from.
	Mappings string
	// MappingCache bounds the in-process cache of mappings, in entries (about
	// 200 bytes each); 0 takes mapping.DefaultCacheSize. A stream whose rows
	// carry more distinct sensitive values than fit goes to the store for most of
	// them, so size it to the distinct values of the rows that change.
	MappingCache int
	// Checkpoints is the default checkpoint store URL of every pipeline: as Mappings,
	// or "target" to keep checkpoints in the target's own transaction (Postgres and
	// MySQL targets only), which makes applying a batch exactly-once. Empty when
	// unset: each pipeline then defaults to "target" when its target is SQL, else
	// to "file:<config dir>/understudy-state.db" (see Pipeline.Checkpoints).
	Checkpoints string
	// Unclassified is what happens to columns no rule names: keep, null or error.
	// Default keep.
	Unclassified transform.Policy
	// Metrics is the listen address of /metrics and /healthz. Default
	// "127.0.0.1:9187": loopback, because metrics name tables and pipelines.
	Metrics string
	// RunID names the namespace of scope: run mappings. Empty (the default) means
	// the caller generates one per process, so every run gets fresh replacements;
	// set it to make several processes, or a restarted one, share a run.
	RunID string
	// Pipelines are in file order; names are unique.
	Pipelines []Pipeline
}

// Pipeline is one source store replicated into one target store.
type Pipeline struct {
	// Name is unique, [a-z0-9_-]+, at most MaxNameLen bytes: it names replication
	// slots, checkpoints and metric labels.
	Name string
	// Source is the production store's URL: postgres://, mysql://, dynamodb://,
	// kafka:// (postgresql:// and mariadb:// are accepted aliases).
	Source string
	// Target is the test store's URL, of the same schemes. It never equals Source.
	// It may be empty when Publish is set: the change events are then the replica.
	Target string
	// Publish, when set, is a kafka:// URL (options as in cdc/kafka.URL, e.g.
	// ?prefix=understudy) where the pipeline also publishes its anonymized changes
	// as Debezium-compatible events, before applying them to Target. It never names
	// the source's Kafka cluster. See docs/kafka.md.
	Publish string
	// Tables lists the replicated tables ("schema.table", a DynamoDB table, a Kafka
	// topic), unique, in file order.
	Tables []string
	// Rules maps table → column → rule. Every table in it is in Tables. Never nil.
	Rules map[string]map[string]transform.Rule
	// Where maps table → row filter expression (transform.ParseFilter accepted it).
	// Every table in it is in Tables. Never nil.
	Where map[string]string
	// Unclassified is the pipeline's policy for columns no rule names: its own
	// setting, else the top-level one.
	Unclassified transform.Policy
	// Checkpoints is the pipeline's checkpoint store URL: its own setting, else
	// the top-level one.
	Checkpoints string
	// Line is where the pipeline starts in the file, for errors found later (at
	// connect time, say) to point at it.
	Line int
}

const (
	// MinSecretLen is the shortest accepted Secret, in bytes: shorter HMAC keys
	// make it practical to guess production values from mapping keys.
	MinSecretLen = 16
	// MaxNameLen bounds pipeline names so that derived identifiers (a Postgres
	// replication slot "understudy_<name>" is limited to 63 bytes) stay valid.
	MaxNameLen = 48
	// CheckpointsInTarget is the Checkpoints value that keeps checkpoints in the
	// target's transaction.
	CheckpointsInTarget = "target"
	// MetricsOff as the Metrics address disables /metrics and /healthz.
	MetricsOff = "off"
	// DefaultMetrics is the default Metrics address.
	DefaultMetrics = "127.0.0.1:9187"
)

// Load reads the config file at path, expands ${ENV} references from the process
// environment, and validates it. A missing file is one error naming the file and
// wrapping fs.ErrNotExist; problems in the file come back as one *Error listing
// all of them.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: config file not found; write one starting from the configuration example in README.md (or pass --config PATH): %w", path, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse decodes and validates a config file's contents. path is used in messages
// and to resolve relative file: store paths (against its directory, made absolute
// from the working directory). env looks up ${NAME} references; Load passes
// os.LookupEnv, tests pass a map. The result has every default filled in. On any
// problem Parse returns nil and an *Error listing every problem found, by line.
func Parse(path string, data []byte, env func(string) (string, bool)) (*Config, error) {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		dir = filepath.Dir(path)
	}
	p := &parser{dir: dir, env: env}
	cfg := p.parse(data)
	if len(p.probs.list) > 0 {
		list := p.probs.sorted()
		if p.secret != "" {
			// Belt and braces: no message may carry the secret, whichever
			// validator wrote it (a rule value that was ${UNDERSTUDY_SECRET}, say).
			for i := range list {
				list[i].Msg = strings.ReplaceAll(list[i].Msg, p.secret, "xxxxx")
				list[i].Field = strings.ReplaceAll(list[i].Field, p.secret, "xxxxx")
			}
		}
		return nil, &Error{Path: path, Problems: list}
	}
	cfg.Path = path
	return cfg, nil
}
