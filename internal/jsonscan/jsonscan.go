// Package jsonscan validates and skips JSON text in one direct pass, accepting
// exactly what encoding/json.Valid accepts. It runs for every message the Kafka
// mirror reads (Valid) and under the transformer's in-place JSON rewrite
// (Scanner.Skip over the parts no rule addresses), where json.Valid's per-byte
// state machine cost several times as much.
package jsonscan

// DefaultMaxDepth is encoding/json's nesting limit, used when Scanner.MaxDepth is 0.
const DefaultMaxDepth = 10000

// Scanner walks Data. Every method takes an offset and returns the offset after
// what it consumed; on malformed input it sets Fail and returns len(Data), so a
// caller can chain calls and check Fail once.
type Scanner struct {
	Data []byte
	// MaxDepth bounds nesting (and so recursion); deeper input fails.
	MaxDepth int
	// Depth is the current nesting: Skip raises it inside a container and
	// lowers it on the way out, so callers that descend themselves share it.
	Depth int
	Fail  bool
}

// Valid reports whether b is one JSON value with optional surrounding whitespace.
func Valid(b []byte) bool {
	s := Scanner{Data: b}
	end := s.WS(s.Skip(s.WS(0)))
	return !s.Fail && end == len(b)
}

func (s *Scanner) fail() int {
	s.Fail = true
	return len(s.Data)
}

func (s *Scanner) maxDepth() int {
	if s.MaxDepth > 0 {
		return s.MaxDepth
	}
	return DefaultMaxDepth
}

// Skip validates the value at i and returns its end.
func (s *Scanner) Skip(i int) int {
	d := s.Data
	if s.Fail || i >= len(d) {
		return s.fail()
	}
	switch c := d[i]; {
	case c == '"':
		return s.Str(i)
	case c == '-' || c >= '0' && c <= '9':
		return s.Number(i)
	case c == '{':
		if s.Depth++; s.Depth > s.maxDepth() {
			break
		}
		i = s.WS(i + 1)
		if i < len(d) && d[i] == '}' {
			s.Depth--
			return i + 1
		}
		for i < len(d) && d[i] == '"' {
			i = s.WS(s.Str(i))
			if s.Fail || i >= len(d) || d[i] != ':' {
				break
			}
			i = s.WS(s.Skip(s.WS(i + 1)))
			if s.Fail || i >= len(d) {
				break
			}
			if d[i] == ',' {
				i = s.WS(i + 1)
				continue
			}
			if d[i] == '}' {
				s.Depth--
				return i + 1
			}
			break
		}
	case c == '[':
		if s.Depth++; s.Depth > s.maxDepth() {
			break
		}
		i = s.WS(i + 1)
		if i < len(d) && d[i] == ']' {
			s.Depth--
			return i + 1
		}
		for {
			i = s.WS(s.Skip(i))
			if s.Fail || i >= len(d) {
				break
			}
			if d[i] == ',' {
				i = s.WS(i + 1)
				continue
			}
			if d[i] == ']' {
				s.Depth--
				return i + 1
			}
			break
		}
	case c == 't':
		return s.Literal(i, "true")
	case c == 'f':
		return s.Literal(i, "false")
	case c == 'n':
		return s.Literal(i, "null")
	}
	return s.fail()
}

// WS returns the offset of the first non-whitespace byte at or after i.
func (s *Scanner) WS(i int) int {
	for i < len(s.Data) {
		switch s.Data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// Literal checks that lit (true, false, null) stands at i.
func (s *Scanner) Literal(i int, lit string) int {
	if len(s.Data)-i >= len(lit) && string(s.Data[i:i+len(lit)]) == lit {
		return i + len(lit)
	}
	return s.fail()
}

// Str validates the string at i (Data[i] == '"') and returns its end.
func (s *Scanner) Str(i int) int {
	d := s.Data
	for j := i + 1; j < len(d); {
		switch c := d[j]; {
		case c == '"':
			return j + 1
		case c == '\\':
			if j+1 >= len(d) {
				return s.fail()
			}
			switch d[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(d) || !isHex(d[j+2]) || !isHex(d[j+3]) || !isHex(d[j+4]) || !isHex(d[j+5]) {
					return s.fail()
				}
				j += 6
			default:
				return s.fail()
			}
		case c < 0x20:
			return s.fail()
		default:
			j++
		}
	}
	return s.fail()
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// Number validates the number at i and returns its end.
func (s *Scanner) Number(i int) int {
	end, ok := NumberEnd(s.Data, i)
	if !ok {
		return s.fail()
	}
	return end
}

// NumberEnd returns the end of the JSON number at d[i:] and whether one is there.
func NumberEnd(d []byte, i int) (int, bool) {
	digits := func(i int) (int, bool) {
		j := i
		for j < len(d) && d[j] >= '0' && d[j] <= '9' {
			j++
		}
		return j, j > i
	}
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		i, _ = digits(i)
	default:
		return i, false
	}
	var ok bool
	if i < len(d) && d[i] == '.' {
		if i, ok = digits(i + 1); !ok {
			return i, false
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i, ok = digits(i); !ok {
			return i, false
		}
	}
	return i, true
}
