package transform

import (
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// inputFor returns the i-th distinct, realistic-looking production value for a
// generator's injectivity test.
var inputFor = map[string]func(i int) string{
	GenFirstName: func(i int) string { return fmt.Sprintf("Name%d", i) },
	GenLastName:  func(i int) string { return fmt.Sprintf("Surname%d", i) },
	GenFullName:  func(i int) string { return fmt.Sprintf("Person %d", i) },
	GenEmail:     func(i int) string { return fmt.Sprintf("user%d@corp.com", i) },
	GenPhone: func(i int) string {
		n := 2015550000 + i
		return fmt.Sprintf("(%03d) %03d-%04d", n/10000000, n/10000%1000, n%10000)
	},
	GenSSN:           func(i int) string { return fmt.Sprintf("%03d-%02d-%04d", 100+i/1000000, 10+i/10000%90, i%10000) },
	GenCreditCard:    func(i int) string { return fmt.Sprintf("4111 %04d %04d %04d", i/100000000, i/10000%10000, i%10000) },
	GenStreetAddress: func(i int) string { return fmt.Sprintf("%d Main Street", i) },
	GenCity:          func(i int) string { return fmt.Sprintf("Town%d", i) },
	GenPostcode: func(i int) string {
		return fmt.Sprintf("%c%c%d %d%c%c", 'A'+i%26, 'A'+i/26%26, i/676%10, i/6760%10, 'A'+i/67600%26, 'A'+i/1757600%26)
	},
	GenUUID:   func(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i*7) },
	GenFormat: func(i int) string { return fmt.Sprintf("K%09d", 100000000+i) },
}

func seedOf(v string) []byte { s := sha256.Sum256([]byte("test-secret|" + v)); return s[:] }

// claimAll simulates the mapping store's claim loop: each value takes the first
// candidate no earlier value claimed. It fails if a value needs more than the
// Mapper's default candidate budget (2,000) or if two values share an output.
func claimAll(t *testing.T, gen string, n int, input func(int) string) {
	t.Helper()
	g, _ := Generator(gen)
	claimed := make(map[string]struct{}, n)
	maxAttempt, total := 0, 0
	for i := 0; i < n; i++ {
		v := input(i)
		seed := seedOf(v)
		a := 0
		for ; a < 2000; a++ {
			c := g.Candidate(v, seed, a)
			if _, dup := claimed[c]; !dup {
				claimed[c] = struct{}{}
				break
			}
		}
		if a == 2000 {
			t.Fatalf("%s: value %d found no free candidate in 2000 attempts (%d claimed)", gen, i, len(claimed))
		}
		maxAttempt = max(maxAttempt, a)
		total += a + 1
	}
	if len(claimed) != n {
		t.Fatalf("%s: %d outputs for %d inputs", gen, len(claimed), n)
	}
	t.Logf("%s: %d values, max attempt %d, mean attempts %.2f", gen, n, maxAttempt, float64(total)/float64(n))
}

func TestGeneratorsInjective(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 50_000
	}
	for _, name := range sortedKeys(generators) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			claimAll(t, name, n, inputFor[name])
		})
	}
}

// A shape with exactly as many values as inputs must still map every input: the
// sequential phase walks the whole space.
func TestFormatFullSpaceBijection(t *testing.T) {
	claimAll(t, GenFormat, 900, func(i int) string { return fmt.Sprint(100 + i) })
	claimAll(t, GenFormat, 676, func(i int) string { return string([]byte{byte('a' + i%26), byte('a' + i/26)}) })
	claimAll(t, GenPostcode, 1000, func(i int) string { return fmt.Sprintf("%03d", i) })
}

func TestGeneratorsDeterministic(t *testing.T) {
	for _, name := range sortedKeys(generators) {
		g, _ := Generator(name)
		v := inputFor[name](42)
		for a := 0; a < 40; a++ {
			if x, y := g.Candidate(v, seedOf(v), a), g.Candidate(v, seedOf(v), a); x != y {
				t.Fatalf("%s attempt %d: %q then %q", name, a, x, y)
			}
		}
		if g.Candidate(v, seedOf(v), 0) == g.Candidate(v, seedOf("other"), 0) {
			t.Errorf("%s: different seeds gave the same candidate", name)
		}
	}
}

// Replacements of realistic values never equal the value itself. Only the
// random phase is checked: the sequential walk of the format-preserving
// generators (attempt ≥ seqAttempt, reached only in crowded spaces) may propose
// the input, because a bijection onto a full space may need it.
func TestGeneratorsNeverReturnInput(t *testing.T) {
	samples := map[string][]string{
		GenFirstName:     {"John", "Maria", "Aaron", "Zoe", "JAMES", "anna"},
		GenLastName:      {"Smith", "Kuhn", "Johnson", "OReilly"},
		GenFullName:      {"John Smith", "Maria Kuhn", "Aaron Abbott"},
		GenEmail:         {"john.smith@gmail.com", "maria.kuhn@example.org"},
		GenPhone:         {"+1 (415) 555-2671", "020 7946 0958", "+44 20 7946 0958", "5551234567"},
		GenSSN:           {"123-45-6789", "078051120"},
		GenCreditCard:    {"4111 1111 1111 1111", "378282246310005", "5555555555554444"},
		GenStreetAddress: {"1600 Pennsylvania Avenue", "221 Baker Street"},
		GenCity:          {"Chicago", "Boston", "Tucson"},
		GenPostcode:      {"02134", "SW1A 1AA", "75008"},
		GenUUID:          {"123e4567-e89b-12d3-a456-426614174000"},
		GenFormat:        {"AB-1234", "x9", "ACME Corp", "-1234.50"},
	}
	for name, vals := range samples {
		g, _ := Generator(name)
		for _, v := range vals {
			for i := 0; i < 500; i++ {
				seed := seedOf(fmt.Sprint(v, i))
				for a := 0; a < seqAttempt; a += 5 {
					if c := g.Candidate(v, seed, a); c == v {
						t.Errorf("%s(%q) attempt %d returned the input", name, v, a)
					}
				}
			}
		}
	}
}

func TestCreditCardLuhnAndShape(t *testing.T) {
	g, _ := Generator(GenCreditCard)
	cases := []struct{ in, prefix string }{
		{"4111 1111 1111 1111", "4"},
		{"378282246310005", "37"},
		{"5555-5555-5555-4444", "55"},
		{"6011111111111117", "6011"},
		{"4111111111111", "4"}, // 13-digit Visa
	}
	for _, c := range cases {
		for a := 0; a < 60; a++ {
			out := g.Candidate(c.in, seedOf(c.in), a)
			if !luhnValid(out) {
				t.Fatalf("%q attempt %d: %q fails Luhn", c.in, a, out)
			}
			if len(out) != len(c.in) || !samePunctuation(c.in, out) {
				t.Fatalf("%q → %q: layout changed", c.in, out)
			}
			if !strings.HasPrefix(strings.NewReplacer(" ", "", "-", "").Replace(out), c.prefix) {
				t.Fatalf("%q → %q: brand prefix %s lost", c.in, out, c.prefix)
			}
		}
	}
}

func samePunctuation(a, b string) bool {
	ra, rb := []rune(a), []rune(b)
	if len(ra) != len(rb) {
		return false
	}
	for i := range ra {
		la := unicode.IsLetter(ra[i]) || unicode.IsDigit(ra[i])
		lb := unicode.IsLetter(rb[i]) || unicode.IsDigit(rb[i])
		if la != lb || !la && ra[i] != rb[i] {
			return false
		}
	}
	return true
}

// sameClasses: digits↔digits, upper↔upper, lower↔lower, everything else equal.
func sameClasses(a, b string) bool {
	ra, rb := []rune(a), []rune(b)
	if len(ra) != len(rb) {
		return false
	}
	for i := range ra {
		x, y := ra[i], rb[i]
		switch {
		case unicode.IsDigit(x):
			if !unicode.IsDigit(y) {
				return false
			}
		case unicode.IsUpper(x):
			if !unicode.IsUpper(y) {
				return false
			}
		case unicode.IsLetter(x):
			if !unicode.IsLower(y) {
				return false
			}
		default:
			if x != y {
				return false
			}
		}
	}
	return true
}

func TestFormatPreserving(t *testing.T) {
	g, _ := Generator(GenFormat)
	for _, in := range []string{"AB-1234", "aBc dEf!", "-1234.50", "0.05", "007", "Ünïcode-42", "9", "(555) 010-9999", "ID_9x/Z"} {
		for a := 0; a < 50; a++ {
			out := g.Candidate(in, seedOf(in), a)
			if !sameClasses(in, out) {
				t.Fatalf("format(%q) attempt %d = %q: classes changed", in, a, out)
			}
			if in[0] == '-' && out[1] == '0' || in == "007" && out[0] != '0' {
				t.Fatalf("format(%q) = %q: leading digit rule broken", in, out)
			}
		}
	}
}

func TestPhoneRealistic(t *testing.T) {
	g, _ := Generator(GenPhone)
	for a := 0; a < 200; a++ {
		in := "+1 (415) 555-2671"
		out := g.Candidate(in, seedOf(fmt.Sprint(a)), a%30)
		if !sameClasses(in, out) || !strings.HasPrefix(out, "+1 (") {
			t.Fatalf("phone(%q) = %q", in, out)
		}
		if out[4] < '2' || out[9] < '2' {
			t.Fatalf("phone(%q) = %q: area and exchange codes must start with 2-9", in, out)
		}
		uk := "+44 20 7946 0958"
		if out := g.Candidate(uk, seedOf(fmt.Sprint(a)), a%30); !strings.HasPrefix(out, "+44 ") || !sameClasses(uk, out) {
			t.Fatalf("phone(%q) = %q: country code or layout lost", uk, out)
		}
	}
}

func TestSSNValid(t *testing.T) {
	g, _ := Generator(GenSSN)
	for a := 0; a < 2000; a++ {
		out := g.Candidate("123-45-6789", seedOf(fmt.Sprint(a)), a%40)
		var area, group, serial int
		if _, err := fmt.Sscanf(out, "%3d-%2d-%4d", &area, &group, &serial); err != nil {
			t.Fatalf("ssn %q: %v", out, err)
		}
		if area == 0 || area == 666 || area >= 900 || group == 0 || serial == 0 {
			t.Fatalf("ssn %q is not a valid SSN", out)
		}
	}
}

func TestNameAndEmailLookReal(t *testing.T) {
	fn, _ := Generator(GenFirstName)
	if out := fn.Candidate("JOHN", seedOf("x"), 0); out != strings.ToUpper(out) {
		t.Errorf("upper-case input gave %q", out)
	}
	em, _ := Generator(GenEmail)
	for a := 0; a < 100; a++ {
		out := em.Candidate("a@b.c", seedOf(fmt.Sprint(a)), a)
		at := strings.LastIndexByte(out, '@')
		if at <= 0 {
			t.Fatalf("email %q", out)
		}
		switch out[at+1:] {
		case "example.com", "example.org", "example.net":
		default:
			t.Fatalf("email %q uses a real domain", out)
		}
	}
	u, _ := Generator(GenUUID)
	out := u.Candidate("123E4567-E89B-12D3-A456-426614174000", seedOf("u"), 0)
	if len(out) != 36 || out != strings.ToUpper(out) || out[14] != '4' {
		t.Errorf("uuid %q", out)
	}
	if out := u.Candidate(string(make([]byte, 16)), seedOf("u"), 0); len(out) != 16 {
		t.Errorf("binary uuid has %d bytes", len(out))
	}
}

// An all-caps (or all-lower-case) dictionary name must never be replaced by
// itself: the generator draws in dictionary case and matchCase converts after.
func TestNameGeneratorsNeverReturnTheInputInAnotherCase(t *testing.T) {
	cases := map[string][]string{GenFirstName: firstNames, GenLastName: lastNames}
	for name, dict := range cases {
		gen, _ := Generator(name)
		for _, word := range dict[:3] {
			for _, value := range []string{strings.ToUpper(word), strings.ToLower(word), word} {
				for s := 0; s < 20000; s++ {
					seed := []byte(strconv.Itoa(s))
					if out := gen.Candidate(value, seed, 0); strings.EqualFold(out, value) {
						t.Fatalf("%s replaced a value by itself (%q) for seed %d", name, out, s)
					}
				}
			}
		}
	}
}
