package transform

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/brianvoe/gofakeit/v7/data"

	"github.com/understudy/understudy/mapping"
)

// Generator names, as written in rules.
const (
	GenFirstName     = "first_name"
	GenLastName      = "last_name"
	GenFullName      = "full_name"
	GenEmail         = "email"
	GenPhone         = "phone"
	GenSSN           = "ssn"
	GenCreditCard    = "credit_card"
	GenStreetAddress = "street_address"
	GenCity          = "city"
	GenPostcode      = "postcode"
	GenUUID          = "uuid"
	GenFormat        = "format"
	// GenDateShift is not a mapping generator: it moves dates by a per-entity
	// number of days computed from the secret (see dateshift.go).
	GenDateShift = "date_shift"
)

// generators holds every mapping generator by name. They are stateless values,
// safe for concurrent use.
var generators = map[string]mapping.Generator{
	GenFirstName:     firstNameGen{},
	GenLastName:      lastNameGen{},
	GenFullName:      fullNameGen{},
	GenEmail:         emailGen{},
	GenPhone:         phoneGen{},
	GenSSN:           ssnGen{},
	GenCreditCard:    creditCardGen{},
	GenStreetAddress: streetAddressGen{},
	GenCity:          cityGen{},
	GenPostcode:      postcodeGen{},
	GenUUID:          uuidGen{},
	GenFormat:        formatGen{},
}

// Generator returns the mapping generator registered under name.
func Generator(name string) (mapping.Generator, bool) {
	g, ok := generators[name]
	return g, ok
}

// GeneratorNames lists every generator a replace rule may name, sorted, including
// date_shift.
func GeneratorNames() []string {
	names := make([]string, 0, len(generators)+1)
	for n := range generators {
		names = append(names, n)
	}
	names = append(names, GenDateShift)
	sort.Strings(names)
	return names
}

// Dictionaries come from gofakeit's data package (deduplicated: its lists repeat
// a few entries, and a repeated word would make two indices give one output).
var (
	firstNames  = dedupe(data.Person["first"])
	lastNames   = dedupe(data.Person["last"])
	cities      = dedupe(data.Address["city"])
	streetTypes = dedupe(data.Address["street_name"])
	streetPre   = dedupe(data.Address["street_prefix"])
	placeSuffix = dedupe(data.Address["street_suffix"])
	// lower-case ASCII forms for e-mail local parts.
	firstLower = lowerASCII(firstNames)
	lastLower  = lowerASCII(lastNames)
)

// emailDomains are reserved for documentation (RFC 2606), so a replica never
// mails a real person.
var emailDomains = []string{"example.com", "example.org", "example.net"}

func dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func lowerASCII(in []string) []string {
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, s := range in {
		var b strings.Builder
		for _, r := range strings.ToLower(s) {
			if r >= 'a' && r <= 'z' {
				b.WriteRune(r)
			}
		}
		if w := b.String(); w != "" && !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

func pick(r *rng, words []string) string { return words[r.intn(len(words))] }

// digits returns a number of exactly width digits drawn from r (leading zeros
// allowed): the open-ended last tier of the dictionary generators, widening with
// the attempt so a caller that keeps asking always reaches unclaimed values.
func digits(r *rng, width int) string {
	b := make([]byte, width)
	for i := range b {
		b[i] = '0' + byte(r.intn(10))
	}
	return string(b)
}

// tailWidth is the digit width of the open-ended tier at attempt a ≥ from: two
// digits, one more every 8 attempts, capped at 18.
func tailWidth(a, from int) int { return min(2+(a-from)/8, 18) }

// matchCase renders a dictionary word in the input's case style: all capitals
// stay all capitals, all lower case stays lower case, anything else is left as
// the dictionary writes it (Title Case).
func matchCase(value, out string) string {
	upper, lower := false, false
	for _, r := range value {
		if unicode.IsUpper(r) {
			upper = true
		} else if unicode.IsLower(r) {
			lower = true
		}
	}
	switch {
	case upper && !lower:
		return strings.ToUpper(out)
	case lower && !upper:
		return strings.ToLower(out)
	}
	return out
}

// notInput retries gen a few times while it returns the input itself: a
// replacement equal to the production value would leak it. The comparison ignores
// case because callers then apply matchCase: "Johnson" drawn for "JOHNSON" would
// come out as "JOHNSON".
func notInput(value string, r *rng, gen func(r *rng) string) string {
	out := gen(r)
	for try := 0; try < 8 && strings.EqualFold(out, value); try++ {
		out = gen(r)
	}
	return out
}

// Dictionary generators use tiers by attempt: single dictionary words first
// (realistic, but a few thousand values), then combinations (millions), then an
// open-ended numeric suffix. Tier boundaries are small so that a crowded domain
// wastes few attempts before reaching a wider tier.

// firstNameGen: "Maria"; then "Maria-Elena"; then "Maria 42".
type firstNameGen struct{}

func (firstNameGen) Candidate(value string, seed []byte, attempt int) string {
	r := newRNG(seed, attempt)
	return matchCase(value, notInput(value, &r, func(r *rng) string {
		switch {
		case attempt < 4:
			return pick(r, firstNames)
		case attempt < 16:
			return pick(r, firstNames) + "-" + pick(r, firstNames)
		}
		return pick(r, firstNames) + " " + digits(r, tailWidth(attempt, 16))
	}))
}

// lastNameGen: "Kuhn"; then "Kuhn-Sauer"; then "Kuhn-Maria"; then "Kuhn 42".
type lastNameGen struct{}

func (lastNameGen) Candidate(value string, seed []byte, attempt int) string {
	r := newRNG(seed, attempt)
	return matchCase(value, notInput(value, &r, func(r *rng) string {
		switch {
		case attempt < 3:
			return pick(r, lastNames)
		case attempt < 6:
			return pick(r, lastNames) + "-" + pick(r, lastNames)
		case attempt < 10:
			return pick(r, lastNames) + "-" + pick(r, firstNames)
		}
		return pick(r, lastNames) + " " + digits(r, tailWidth(attempt, 10))
	}))
}

// fullNameGen: "Maria Kuhn"; then "Maria J. Kuhn"; then "Maria J. Kuhn-Sauer";
// then a numeric suffix.
type fullNameGen struct{}

func (fullNameGen) Candidate(value string, seed []byte, attempt int) string {
	r := newRNG(seed, attempt)
	return matchCase(value, notInput(value, &r, func(r *rng) string {
		first, last := pick(r, firstNames), pick(r, lastNames)
		switch {
		case attempt < 6:
			return first + " " + last
		case attempt < 16:
			return first + " " + string(rune('A'+r.intn(26))) + ". " + last
		case attempt < 32:
			return first + " " + string(rune('A'+r.intn(26))) + ". " + last + "-" + pick(r, lastNames)
		}
		return first + " " + last + " " + digits(r, tailWidth(attempt, 32))
	}))
}

// emailGen: "maria.kuhn@example.org" in one of four local-part styles; then with
// a two-digit suffix; then wider suffixes. Always lower case: e-mail uniqueness is
// usually case-insensitive, and lower case can never clash by case alone.
type emailGen struct{}

func (emailGen) Candidate(value string, seed []byte, attempt int) string {
	r := newRNG(seed, attempt)
	return notInput(value, &r, func(r *rng) string {
		first, last := pick(r, firstLower), pick(r, lastLower)
		var local string
		switch r.intn(4) {
		case 0:
			local = first + "." + last
		case 1:
			local = first + "_" + last
		case 2:
			local = first + last
		default:
			local = first[:1] + last
		}
		switch {
		case attempt < 8:
		case attempt < 24:
			local += digits(r, 2)
		default:
			local += digits(r, tailWidth(attempt, 24)+1)
		}
		return local + "@" + emailDomains[r.intn(len(emailDomains))]
	})
}

// streetAddressGen: "4821 Kuhn Avenue", sometimes with a direction prefix
// ("North Maria Street"); then five-digit house numbers; then a unit number.
type streetAddressGen struct{}

func (streetAddressGen) Candidate(value string, seed []byte, attempt int) string {
	r := newRNG(seed, attempt)
	return matchCase(value, notInput(value, &r, func(r *rng) string {
		var name string
		if r.intn(4) == 0 {
			name = pick(r, firstNames)
		} else {
			name = pick(r, lastNames)
		}
		if r.intn(5) == 0 {
			name = pick(r, streetPre) + " " + name
		}
		street := name + " " + pick(r, streetTypes)
		switch {
		case attempt < 16:
			return strconv.Itoa(1+r.intn(9999)) + " " + street
		case attempt < 32:
			return strconv.Itoa(1+r.intn(99999)) + " " + street
		}
		return strconv.Itoa(1+r.intn(99999)) + " " + street + ", Unit " + strconv.Itoa(1+r.intn(pow10(tailWidth(attempt, 32))))
	}))
}

func pow10(n int) int {
	p := 1
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}

// cityGen: a real city name first ("Tucson"); then invented place names in the
// American style ("Kuhnville", "Port Mariaton"); then a numeric suffix.
type cityGen struct{}

func (cityGen) Candidate(value string, seed []byte, attempt int) string {
	r := newRNG(seed, attempt)
	return matchCase(value, notInput(value, &r, func(r *rng) string {
		switch {
		case attempt < 2:
			return pick(r, cities)
		case attempt < 4:
			return pick(r, lastNames) + pick(r, placeSuffix)
		case attempt < 7:
			return pick(r, streetPre) + " " + pick(r, lastNames) + pick(r, placeSuffix)
		case attempt < 10:
			return pick(r, streetPre) + " " + pick(r, firstNames) + pick(r, placeSuffix)
		}
		return pick(r, lastNames) + pick(r, placeSuffix) + " " + digits(r, tailWidth(attempt, 10))
	}))
}

// formatGen is format-preserving: letters stay letters of the same case, digits
// stay digits, everything else (length, punctuation, spaces) stays put; a
// multi-digit number keeps a non-zero leading digit, so integers keep their
// width and stay integers ("-1234.50" → "-8302.17", "AB-12x" → "QK-90d").
type formatGen struct{}

func (formatGen) Candidate(value string, seed []byte, attempt int) string {
	l := layoutOf(value, false)
	return l.candidate(value, seed, attempt)
}

// postcodeGen is format-preserving with free leading digits, since postcodes may
// start with zero ("02134" → "57310", "SW1A 1AA" → "KE7P 3XD").
type postcodeGen struct{}

func (postcodeGen) Candidate(value string, seed []byte, attempt int) string {
	l := layoutOf(value, true)
	return l.candidate(value, seed, attempt)
}

// phoneGen keeps the input's layout (punctuation, spaces, number of digits) and
// its country code, and makes the rest look like a real number: a North
// American number gets valid area and exchange codes (first digit 2–9); elsewhere
// a national trunk "0" stays "0" and any other first digit stays non-zero.
type phoneGen struct{}

func (phoneGen) Candidate(value string, seed []byte, attempt int) string {
	l := layoutOf(value, true)
	ds := digitSlots(&l)
	vd := inputDigits(value)
	if len(ds) < 4 || len(vd) != len(ds) {
		return l.candidate(value, seed, attempt)
	}
	keep := countryCodeDigits(value, len(ds))
	// The national number starts after the kept country code.
	nat := ds[keep:]
	nanp := len(nat) == 10 && (keep == 0 || keep == 1 && vd[0] == '1')
	if !nanp && keep == 0 && len(ds) == 11 && digitAt(value, 0) == '1' {
		// "1-555-…" without a plus: the leading 1 is the NANP country code.
		keep, nat, nanp = 1, ds[1:], true
	}
	for i := 0; i < keep; i++ {
		ds[i].n = 0 // fixed, written below
	}
	if nanp {
		nat[0].lo, nat[0].n = '2', 8
		nat[3].lo, nat[3].n = '2', 8
	} else if digitAt(value, keep) == '0' {
		nat[0].n = 0
	} else {
		nat[0].lo, nat[0].n = '1', 9
	}
	// Write the fixed digits from the input and drop them from the slot list.
	free := l.slots[:0]
	for i, s := range ds {
		if s.n == 0 {
			l.out[s.pos] = vd[i]
			continue
		}
		free = append(free, s)
	}
	// Letters in a phone value ("ext") keep their own slots.
	l.slots = append(free, nonDigitSlots(&l)...)
	return l.candidate(value, seed, attempt)
}

// countryCodeDigits returns how many leading digits form the country code of a
// "+"-prefixed number: the first digit group when the number is grouped ("+44 20
// …"), else 1 for the codes 1 and 7 and 2 otherwise.
func countryCodeDigits(value string, ndigits int) int {
	v := strings.TrimSpace(value)
	if !strings.HasPrefix(v, "+") {
		return 0
	}
	g := 0
	for i := 1; i < len(v) && isDigit(v[i]); i++ {
		g++
	}
	if g >= 1 && g <= 3 && g < ndigits {
		return g
	}
	if d := digitAt(value, 0); d == '1' || d == '7' {
		return 1
	}
	return 2
}

// digitAt returns the i-th ASCII digit of value, or 0.
func digitAt(value string, i int) byte {
	for j := 0; j < len(value); j++ {
		if isDigit(value[j]) {
			if i == 0 {
				return value[j]
			}
			i--
		}
	}
	return 0
}

func inputDigits(value string) []byte {
	var d []byte
	for j := 0; j < len(value); j++ {
		if isDigit(value[j]) {
			d = append(d, value[j])
		}
	}
	return d
}

// digitSlots returns a layout's digit positions as slots allowing 0–9, in order;
// layoutOf(…, true) made every ASCII digit a slot.
func digitSlots(l *layout) []slot {
	var ds []slot
	for _, s := range l.slots {
		if s.lo == '0' || s.lo == '1' {
			ds = append(ds, slot{pos: s.pos, lo: '0', n: 10})
		}
	}
	return ds
}

func nonDigitSlots(l *layout) []slot {
	var out []slot
	for _, s := range l.slots {
		if s.lo != '0' && s.lo != '1' {
			out = append(out, s)
		}
	}
	return out
}

// ssnGen produces valid-looking US Social Security numbers in the input's
// layout ("123-45-6789", "123456789"): area 001–899 except 666, group 01–99,
// serial 0001–9999. Values without exactly nine digits are format-preserved.
type ssnGen struct{}

const ssnSpace = 898 * 99 * 9999

func (ssnGen) Candidate(value string, seed []byte, attempt int) string {
	l := layoutOf(value, true)
	ds := digitSlots(&l)
	if len(ds) != 9 || len(ds) != len(l.slots) {
		return formatGen{}.Candidate(value, seed, attempt)
	}
	write := func(idx uint64) string {
		area := 1 + idx%898
		if area >= 666 {
			area++
		}
		group := 1 + (idx/898)%99
		serial := 1 + (idx/898/99)%9999
		s := fmt.Sprintf("%03d%02d%04d", area, group, serial)
		for i, d := range ds {
			l.out[d.pos] = s[i]
		}
		return string(l.out)
	}
	if attempt < seqAttempt {
		r := newRNG(seed, attempt)
		return notInput(value, &r, func(r *rng) string { return write(r.next() % ssnSpace) })
	}
	return write((seedBase(seed) + uint64(attempt-seqAttempt)) % ssnSpace)
}

// creditCardGen produces Luhn-valid card numbers in the input's layout
// ("4111 1111 1111 1111"), keeping its length and brand prefix (Visa 4, Amex
// 34/37, Mastercard 51–55/22–27, Discover 6011/65/64x, others their first digit).
// Values with fewer than 12 digits are not card numbers and are format-preserved.
type creditCardGen struct{}

func (creditCardGen) Candidate(value string, seed []byte, attempt int) string {
	l := layoutOf(value, true)
	ds := digitSlots(&l)
	vd := inputDigits(value)
	if len(ds) < 12 || len(ds) > 19 || len(ds) != len(l.slots) || len(vd) != len(ds) {
		return formatGen{}.Candidate(value, seed, attempt)
	}
	keep := brandPrefix(vd)
	for i := 0; i < keep; i++ {
		l.out[ds[i].pos] = vd[i]
	}
	body := ds[keep : len(ds)-1]
	l.slots = body
	check := ds[len(ds)-1]
	finish := func() string {
		num := make([]byte, len(ds)-1)
		for i := range num {
			num[i] = l.out[ds[i].pos]
		}
		l.out[check.pos] = luhnCheckDigit(num)
		return string(l.out)
	}
	size, _ := l.size() // at most 10^17: fits
	if attempt < seqAttempt {
		r := newRNG(seed, attempt)
		return notInput(value, &r, func(r *rng) string { l.fillRandom(r); return finish() })
	}
	l.fillIndex((seedBase(seed) + uint64(attempt-seqAttempt)) % size)
	return finish()
}

// brandPrefix returns how many leading digits identify the card brand.
func brandPrefix(d []byte) int {
	p := string(d[:4])
	switch {
	case p == "6011":
		return 4
	case p[:2] == "34" || p[:2] == "37" || p[:2] == "65" || (p[0] == '5' && p[1] >= '1' && p[1] <= '5') ||
		(p[0] == '2' && p[1] >= '2' && p[1] <= '7'):
		return 2
	case p[:2] == "64":
		return 3
	}
	return 1
}

// luhnCheckDigit returns the digit that makes num||digit pass the Luhn check.
func luhnCheckDigit(num []byte) byte {
	sum := 0
	for i := len(num) - 1; i >= 0; i-- {
		d := int(num[i] - '0')
		if (len(num)-1-i)%2 == 0 { // doubled: these become odd positions from the right once the check digit is appended
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}

// luhnValid reports whether the digits of s pass the Luhn check.
func luhnValid(s string) bool {
	d := inputDigits(s)
	if len(d) < 2 {
		return false
	}
	return luhnCheckDigit(d[:len(d)-1]) == d[len(d)-1]
}

// uuidGen produces random (version 4) UUIDs. The output follows the input's
// form: upper or lower case, with or without dashes; a 16-byte binary UUID
// (MySQL BINARY(16)) gets 16 bytes.
type uuidGen struct{}

func (uuidGen) Candidate(value string, seed []byte, attempt int) string {
	r := newRNG(seed, attempt)
	var u [16]byte
	a, b := r.next(), r.next()
	for i := 0; i < 8; i++ {
		u[i] = byte(a >> (8 * i))
		u[8+i] = byte(b >> (8 * i))
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	if len(value) == 16 && !isPrintableASCII(value) {
		return string(u[:])
	}
	const hexLower, hexUpper = "0123456789abcdef", "0123456789ABCDEF"
	hex := hexLower
	if strings.ToUpper(value) == value && strings.ToLower(value) != value {
		hex = hexUpper
	}
	dashes := len(value) != 32
	out := make([]byte, 0, 36)
	for i, c := range u {
		if dashes && (i == 4 || i == 6 || i == 8 || i == 10) {
			out = append(out, '-')
		}
		out = append(out, hex[c>>4], hex[c&0xf])
	}
	return string(out)
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
