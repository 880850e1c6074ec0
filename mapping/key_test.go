package mapping

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"
)

func TestKeyer(t *testing.T) {
	k := NewKeyer([]byte("secret"))
	if k.Key("name", "alice") != k.Key("name", "alice") {
		t.Fatal("Key is not deterministic")
	}
	if k.Key("name", "alice") == k.Key("email", "alice") {
		t.Error("Key ignores the domain")
	}
	if k.Key("ab", "c") == k.Key("a", "bc") {
		t.Error(`Key("ab","c") == Key("a","bc"): fields are not length-prefixed`)
	}
	if k.Key("name", "alice") == NewKeyer([]byte("other")).Key("name", "alice") {
		t.Error("Key ignores the secret")
	}
	d1, d2 := DailyNamespace(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)), DailyNamespace(time.Date(2024, 5, 2, 0, 0, 0, 0, time.UTC))
	if bytes.Equal(k.Seed(d1, "name", "alice"), k.Seed(d2, "name", "alice")) {
		t.Error("Seed ignores the namespace: daily replacements would not change")
	}
	key := k.Key("name", "alice")
	if bytes.Equal(k.Seed(PermanentNamespace(), "name", "alice"), key[:]) {
		t.Error("Seed equals Key")
	}
	if bytes.Contains(key[:], []byte("alice")) {
		t.Error("key contains the plaintext")
	}
}

func TestDailyNamespace(t *testing.T) {
	ns := DailyNamespace(time.Date(2024, 5, 1, 23, 59, 0, 0, time.FixedZone("x", -3600)))
	if ns.Period != "2024-05-02" {
		t.Errorf("period %q: want the UTC day", ns.Period)
	}
	if want := time.Date(2024, 5, 4, 0, 0, 0, 0, time.UTC); !ns.Expires.Equal(want) {
		t.Errorf("expires %v, want %v (end of day + DailyGrace)", ns.Expires, want)
	}
}

func TestCacheIsBounded(t *testing.T) {
	c := newCache(1000)
	for i := range 100_000 {
		v := string(rune('a'+i%26)) + string(rune(i))
		c.shardOf("d", v).Put(cacheKey{scope: Permanent, domain: "d", value: v}, cacheEntry{out: v})
	}
	n := 0
	for i := range c.shards {
		n += c.shards[i].Len()
	}
	if n > 1000 {
		t.Errorf("cache holds %d entries, bound 1000", n)
	}
}

// Keys and seeds must never change: stored mappings are found by key, and
// replacements (and date shifts) derive from seeds.
func TestKeyerIsStable(t *testing.T) {
	k := NewKeyer([]byte("secret"))
	day := DailyNamespace(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))
	for _, c := range []struct{ got, want string }{
		{hexOf(k.Key("name", "alice")), "2f1c6a2cb5efd6798244ad97f25b37d506cc2239ee7d14dd215462092df3a369"},
		{hex.EncodeToString(k.Seed(day, "name", "alice")), "5e4b5024d0052359f46baf5a77d9faf5d0ea0e758309c71400cd1e015f5b70d9"},
		{hexOf(k.Key("", "")), "c47f0b0ff1564d2f0cb998fc20093e4507f7bbc5f0a5446ce47a866a0ffcae34"},
		{hex.EncodeToString(k.Seed(PermanentNamespace(), "", "")), "3028908b3459f4615ad9efeba2d30616a6db7c32e95f12f2b8b1ced9fe56039d"},
	} {
		if c.got != c.want {
			t.Errorf("got %s, want %s", c.got, c.want)
		}
	}
}

func hexOf(k Key) string { return hex.EncodeToString(k[:]) }

// BenchmarkKeyAndSeed is what every new value pays before its candidates: its
// stored key and its generator seed.
func BenchmarkKeyAndSeed(b *testing.B) {
	k := NewKeyer([]byte("bench secret"))
	var seed [32]byte
	b.ReportAllocs()
	for range b.N {
		_ = k.Key("email", "someone.special@example.com")
		k.seedTo(&seed, PermanentNamespace(), "email", "someone.special@example.com")
	}
}
