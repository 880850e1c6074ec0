// Package deploy holds the example deployment (understudy.yaml, seed data) that
// docker-compose.yml runs. No Docker engine runs where the tests do, so these
// tests check what can be checked without one: the compose file parses, has the
// services the issue lists with the settings the hermetic tests use, points
// understudy at files that exist and at hosts it defines, and the example config
// passes understudy's own validation.
package deploy

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/understudy/understudy/cdc/kafka"
	"github.com/understudy/understudy/config"
)

type composeFile struct {
	Name     string
	Services map[string]service
}

type service struct {
	Image       string
	Build       *struct{ Context, Dockerfile string }
	Command     []string
	Entrypoint  []string
	Environment map[string]string
	Volumes     []string
	Ports       []string
	DependsOn   yaml.Node `yaml:"depends_on"`
	Healthcheck *struct{ Test []string }
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	return c
}

func (s service) has(args ...string) bool {
	for _, a := range args {
		if !slices.Contains(s.Command, a) {
			return false
		}
	}
	return true
}

// The services the Kafka issue lists, with the settings the tests' servers use
// (TESTING.md, testenv/): a ROW binlog of full images with GTIDs, logical
// decoding, KRaft without ZooKeeper, no topic auto-creation on the test cluster,
// DynamoDB Local with per-region tables.
func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	svc := func(name string) service {
		s, ok := c.Services[name]
		if !ok {
			t.Fatalf("docker-compose.yml has no service %s", name)
		}
		return s
	}
	for _, n := range []string{"prod-postgres", "test-postgres"} {
		s := svc(n)
		if !strings.HasPrefix(s.Image, "postgres:16") {
			t.Errorf("%s: image %s, want postgres:16", n, s.Image)
		}
	}
	if s := svc("prod-postgres"); !s.has("wal_level=logical") {
		t.Errorf("prod-postgres: command %v lacks wal_level=logical", s.Command)
	}
	for _, n := range []string{"prod-mysql", "test-mysql"} {
		if s := svc(n); !regexp.MustCompile(`^mysql:8(\.|$)`).MatchString(s.Image) {
			t.Errorf("%s: image %s, want MySQL 8", n, s.Image)
		}
	}
	if s := svc("prod-mysql"); !s.has("--binlog-format=ROW", "--binlog-row-image=FULL", "--gtid-mode=ON", "--enforce-gtid-consistency=ON") || !slices.ContainsFunc(s.Command, func(a string) bool { return strings.HasPrefix(a, "--log-bin") }) {
		t.Errorf("prod-mysql: command %v: want a ROW binlog of FULL images with GTIDs", s.Command)
	}
	if s := svc("redis"); !strings.HasPrefix(s.Image, "redis:7") {
		t.Errorf("redis: image %s", s.Image)
	}
	if s := svc("dynamodb"); !strings.HasPrefix(s.Image, "amazon/dynamodb-local:") || s.has("-sharedDb") {
		t.Errorf("dynamodb: %s %v: want DynamoDB Local without -sharedDb (prod and test differ by region)", s.Image, s.Command)
	}
	for _, n := range []string{"prod-kafka", "test-kafka"} {
		s := svc(n)
		if !strings.HasPrefix(s.Image, "apache/kafka:") || s.Environment["KAFKA_PROCESS_ROLES"] != "broker,controller" ||
			!strings.HasPrefix(s.Environment["KAFKA_CONTROLLER_QUORUM_VOTERS"], "1@"+n+":") {
			t.Errorf("%s: want a single-node KRaft broker (roles broker,controller, itself as the only voter): %s %v", n, s.Image, s.Environment)
		}
		for k := range s.Environment {
			if strings.Contains(k, "ZOOKEEPER") {
				t.Errorf("%s: %s: KRaft needs no ZooKeeper", n, k)
			}
		}
	}
	if v := svc("test-kafka").Environment["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]; v != "false" {
		t.Errorf("test-kafka: KAFKA_AUTO_CREATE_TOPICS_ENABLE=%q; understudy creates target topics itself after its marker check", v)
	}
	for n, s := range c.Services {
		if strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("%s: pin the image version (%s)", n, s.Image)
		}
	}

	// understudy, built from this repository with the example config.
	u := svc("understudy")
	if u.Build == nil || u.Build.Context != "." {
		t.Fatalf("understudy: not built from the repository: %+v", u.Build)
	}
	dockerfile, err := os.ReadFile(filepath.Join("..", u.Build.Dockerfile))
	if err != nil {
		t.Fatalf("understudy: %v", err)
	}
	gomod, _ := os.ReadFile("../go.mod")
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if goVer == nil || !strings.Contains(string(dockerfile), "FROM golang:"+string(goVer[1])) ||
		!strings.Contains(string(dockerfile), "./cmd/understudy") {
		t.Errorf("Dockerfile must build ./cmd/understudy with Go %s (go.mod)", goVer[1])
	}
	if u.Environment["UNDERSTUDY_SECRET"] == "" {
		t.Error("understudy: UNDERSTUDY_SECRET is not passed in")
	}
	cfgPath := ""
	for i, a := range u.Command {
		if a == "--config" && i+1 < len(u.Command) {
			cfgPath = u.Command[i+1]
		}
	}
	mounted := ""
	for _, v := range append(u.Volumes, svc("prod-postgres").Volumes...) {
		host, ctr, _ := strings.Cut(v, ":")
		ctr = strings.TrimSuffix(ctr, ":ro")
		if _, err := os.Stat(filepath.Join("..", host)); err != nil {
			t.Errorf("volume %s: %v", v, err)
		}
		if ctr == cfgPath {
			mounted = host
		}
	}
	if mounted != "./deploy/understudy.yaml" {
		t.Errorf("understudy runs --config %q, which is not deploy/understudy.yaml mounted (volumes %v)", cfgPath, u.Volumes)
	}
}

// The example config passes understudy's validation, has a pipeline per store
// kind, and names only hosts docker-compose.yml defines, on their container ports.
func TestExampleConfig(t *testing.T) {
	data, err := os.ReadFile("understudy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"UNDERSTUDY_SECRET": strings.Repeat("ab", 32)}
	cfg, err := config.Parse("understudy.yaml", data, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("deploy/understudy.yaml is not a valid config:\n%v", err)
	}
	c := loadCompose(t)
	ports := map[string]string{ // container port of each store kind
		"postgres": "5432", "mysql": "3306", "kafka": "9092", "dynamodb": "8000", "redis": "6379", "http": "8000",
	}
	checkHost := func(field, raw string) {
		t.Helper()
		var hosts []string
		scheme, _, _ := strings.Cut(raw, "://")
		if scheme == "kafka" {
			u, err := kafka.ParseURL(raw)
			if err != nil {
				t.Errorf("%s: %v", field, err)
				return
			}
			hosts = u.Brokers
		} else {
			u, err := url.Parse(raw)
			if err != nil {
				t.Errorf("%s: %v", field, err)
				return
			}
			hosts = []string{u.Host}
			if ep := u.Query().Get("endpoint"); ep != "" {
				e, _ := url.Parse(ep)
				hosts, scheme = []string{e.Host}, e.Scheme
			}
		}
		for _, h := range hosts {
			name, port, _ := strings.Cut(h, ":")
			if _, ok := c.Services[name]; !ok {
				t.Errorf("%s: host %s is not a docker-compose.yml service", field, name)
			}
			if port != ports[scheme] {
				t.Errorf("%s: port %s of %s, the container listens on %s", field, port, name, ports[scheme])
			}
		}
	}
	checkHost("mappings", cfg.Mappings)
	kinds := map[string]bool{}
	for _, p := range cfg.Pipelines {
		scheme, _, _ := strings.Cut(p.Source, "://")
		kinds[scheme] = true
		for f, u := range map[string]string{"source": p.Source, "target": p.Target, "publish": p.Publish, "checkpoints": p.Checkpoints} {
			if u != "" {
				checkHost(p.Name+"."+f, u)
			}
		}
		if p.Publish != "" {
			kinds["publish"] = true
		}
	}
	for _, k := range []string{"postgres", "mysql", "kafka", "dynamodb", "publish"} {
		if !kinds[k] {
			t.Errorf("the example config has no %s pipeline", k)
		}
	}
}
