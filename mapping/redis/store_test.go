package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/understudy/understudy/mapping"
	"github.com/understudy/understudy/mapping/mappingtest"
	"github.com/understudy/understudy/mapping/redis"
	"github.com/understudy/understudy/testenv"
)

func TestMain(m *testing.M) {
	mappingtest.RunChild()
	testenv.Main(m)
}

func open(t testing.TB, url string) *redis.Store {
	t.Helper()
	s, err := redis.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	srv := testenv.Redis(t)
	mappingtest.Run(t, func(t *testing.T) mapping.Store { return open(t, srv.URL(t)) },
		mappingtest.Options{SharedURL: func(t *testing.T) string { return srv.URL(t) }})
}

func TestOpenByURL(t *testing.T) {
	srv := testenv.Redis(t)
	s, err := mapping.Open(context.Background(), srv.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*redis.Store); !ok {
		t.Fatalf("Open(redis://…) = %T", s)
	}
	_ = s.Close()
}

// The store holds keyed hashes and replacements, never the production value.
func TestNoPlaintextInRedis(t *testing.T) {
	url := testenv.Redis(t).URL(t)
	s := open(t, url)
	defer s.Close()
	const canary = "canary-7f3a-production-value"
	m := mapping.NewMapper(s, mappingtest.Secret, mapping.MapperOptions{})
	if err := m.Resolve(context.Background(), []mapping.Item{
		{NS: mapping.DailyNamespace(time.Now()), Domain: "email", Value: canary, Gen: mappingtest.Generator(10)},
		{NS: mapping.PermanentNamespace(), Domain: "email", Value: canary, Gen: mappingtest.Generator(10)},
	}); err != nil {
		t.Fatal(err)
	}
	opts, _ := goredis.ParseURL(url)
	c := goredis.NewClient(opts)
	defer c.Close()
	keys, err := c.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("no keys written")
	}
	for _, k := range keys {
		var val string
		switch c.Type(context.Background(), k).Val() {
		case "string":
			val = c.Get(context.Background(), k).Val()
		case "set":
			val = strings.Join(c.SMembers(context.Background(), k).Val(), ",")
		}
		if strings.Contains(k, canary) || strings.Contains(val, canary) {
			t.Errorf("key %q (value %q) contains the production value", k, val)
		}
	}
}

// A server that lost its script cache (restart, SCRIPT FLUSH) gets the scripts
// loaded again.
func TestScriptCacheFlushed(t *testing.T) {
	url := testenv.Redis(t).URL(t)
	s := open(t, url)
	defer s.Close()
	req := mapping.Request{NS: mapping.PermanentNamespace(), Domain: "d", Key: mapping.Key{1}, Candidates: []string{"a"}}
	if _, err := s.Resolve(context.Background(), []mapping.Request{req}); err != nil {
		t.Fatal(err)
	}
	opts, _ := goredis.ParseURL(url)
	c := goredis.NewClient(opts)
	defer c.Close()
	if err := c.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	res, err := s.Resolve(context.Background(), []mapping.Request{req})
	if err != nil {
		t.Fatalf("Resolve after SCRIPT FLUSH: %v", err)
	}
	if !res[0].OK || res[0].Value != "a" {
		t.Errorf("Resolve after SCRIPT FLUSH = %+v", res[0])
	}
	if n, err := s.Forget(context.Background(), "d", req.Key); err != nil || n != 1 {
		t.Errorf("Forget after SCRIPT FLUSH = (%d, %v)", n, err)
	}
}

// Namespaces and domains may contain ':' and glob characters without mixing up
// keys or purging the wrong namespace.
func TestOddNames(t *testing.T) {
	s := open(t, testenv.Redis(t).URL(t))
	defer s.Close()
	ctx := context.Background()
	a := mapping.Namespace{Scope: mapping.Run, Period: "a:b"}
	b := mapping.Namespace{Scope: mapping.Run, Period: "a"}
	star := mapping.Namespace{Scope: mapping.Run, Period: "*"}
	reqs := []mapping.Request{
		{NS: a, Domain: "c", Key: mapping.Key{1}, Candidates: []string{"x"}},
		{NS: b, Domain: "b:c", Key: mapping.Key{1}, Candidates: []string{"y"}},
		{NS: star, Domain: "c", Key: mapping.Key{1}, Candidates: []string{"z"}},
	}
	res, err := s.Resolve(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Value != "x" || res[1].Value != "y" || res[2].Value != "z" {
		t.Fatalf("odd names collided: %+v", res)
	}
	if err := s.Purge(ctx, mapping.Run, "*"); err != nil {
		t.Fatal(err)
	}
	res, err = s.Lookup(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].OK || !res[1].OK || res[2].OK {
		t.Errorf("Purge(run, \"*\") removed the wrong namespaces: %+v", res)
	}
}
