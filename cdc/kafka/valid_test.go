package kafka

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// validJSON accepts exactly what encoding/json.Valid accepts.
func TestValidJSON(t *testing.T) {
	docs := []string{
		`{"email":"alice@corp.com","n":-1.5e+3,"ok":true,"no":false,"x":null,"a":[1,{"b":[]},{}],"u":"\u00e9\"\\\/\b\f\n\r\t"}`,
		" [ 0 , -0.0 , 1E5 , \"x\" ] \n",
		`"str"`, `123`, `true`, `null`, `{}`, `[]`,
		strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	}
	check := func(b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("%.80q: validJSON %v, json.Valid %v", b, got, want)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte(`{}[]:,"\ 0123456789-+.eEtrufalsnu/bx` + "\t\n\x01\x1f\x7f\xff")
	for _, d := range docs {
		check([]byte(d))
		if len(d) > 200 {
			continue
		}
		for range 2000 {
			b := []byte(d)
			for range 1 + rng.IntN(3) {
				i := rng.IntN(len(b))
				switch rng.IntN(3) {
				case 0:
					b[i] = alphabet[rng.IntN(len(alphabet))]
				case 1:
					b = append(b[:i], b[i+1:]...)
				default:
					b = append(b[:i], append([]byte{alphabet[rng.IntN(len(alphabet))]}, b[i:]...)...)
				}
				if len(b) == 0 {
					b = []byte{' '}
				}
			}
			check(b)
		}
	}
	for _, s := range []string{"", " ", "01", "-", "1.", ".5", "1e", "1e+", "tru", "nul", `"\u12"`, `"\x"`, `{"a" 1}`, `[1,]`, `{"a":1,}`, `{1:2}`} {
		check([]byte(s))
	}
}

func BenchmarkValidJSON(b *testing.B) {
	doc := []byte(`{"amount":"17.17","created_at":"2026-05-01T09:30:00Z","currency":"EUR","email":"customer17@prod.example","items":[{"qty":3,"sku":"SKU-00017"}],"name":"Real Person 17","order_id":17}`)
	b.Run("validJSON", func(b *testing.B) {
		for range b.N {
			validJSON(doc)
		}
	})
	b.Run("encoding/json.Valid", func(b *testing.B) {
		for range b.N {
			json.Valid(doc)
		}
	})
}
