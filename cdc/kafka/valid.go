package kafka

// validJSON reports whether b is one JSON value (with optional surrounding
// whitespace), exactly as encoding/json.Valid does, in one direct pass: it runs
// for every message the mirror reads, and json.Valid's per-byte state machine
// cost several times the scan (cdc/kafka's TestValidJSON compares the two).
func validJSON(b []byte) bool {
	v := validator{b: b}
	i := v.value(v.ws(0), 0)
	return !v.bad && v.ws(i) == len(b)
}

// maxDepth matches encoding/json's nesting limit.
const maxDepth = 10000

type validator struct {
	b   []byte
	bad bool
}

func (v *validator) fail() int {
	v.bad = true
	return len(v.b)
}

func (v *validator) ws(i int) int {
	for i < len(v.b) {
		switch v.b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func (v *validator) value(i, depth int) int {
	b := v.b
	if v.bad || i >= len(b) {
		return v.fail()
	}
	switch c := b[i]; {
	case c == '"':
		return v.str(i)
	case c == '{':
		if depth++; depth > maxDepth {
			return v.fail()
		}
		i = v.ws(i + 1)
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		for i < len(b) && b[i] == '"' {
			i = v.ws(v.str(i))
			if v.bad || i >= len(b) || b[i] != ':' {
				return v.fail()
			}
			i = v.ws(v.value(v.ws(i+1), depth))
			if v.bad || i >= len(b) {
				return v.fail()
			}
			switch b[i] {
			case ',':
				i = v.ws(i + 1)
				continue
			case '}':
				return i + 1
			}
			return v.fail()
		}
		return v.fail()
	case c == '[':
		if depth++; depth > maxDepth {
			return v.fail()
		}
		i = v.ws(i + 1)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		for {
			i = v.ws(v.value(i, depth))
			if v.bad || i >= len(b) {
				return v.fail()
			}
			switch b[i] {
			case ',':
				i = v.ws(i + 1)
				continue
			case ']':
				return i + 1
			}
			return v.fail()
		}
	case c == 't':
		return v.lit(i, "true")
	case c == 'f':
		return v.lit(i, "false")
	case c == 'n':
		return v.lit(i, "null")
	case c == '-' || c >= '0' && c <= '9':
		return v.number(i)
	}
	return v.fail()
}

func (v *validator) lit(i int, s string) int {
	if len(v.b)-i >= len(s) && string(v.b[i:i+len(s)]) == s {
		return i + len(s)
	}
	return v.fail()
}

func (v *validator) str(i int) int {
	b := v.b
	for j := i + 1; j < len(b); {
		c := b[j]
		switch {
		case c == '"':
			return j + 1
		case c == '\\':
			if j+1 >= len(b) {
				return v.fail()
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(b) || !hex(b[j+2]) || !hex(b[j+3]) || !hex(b[j+4]) || !hex(b[j+5]) {
					return v.fail()
				}
				j += 6
			default:
				return v.fail()
			}
		case c < 0x20:
			return v.fail()
		default:
			j++
		}
	}
	return v.fail()
}

func hex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func (v *validator) number(i int) int {
	b := v.b
	digits := func(i int) (int, bool) {
		j := i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j, j > i
	}
	if b[i] == '-' {
		i++
	}
	var ok bool
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i, _ = digits(i)
	default:
		return v.fail()
	}
	if i < len(b) && b[i] == '.' {
		if i, ok = digits(i + 1); !ok {
			return v.fail()
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i, ok = digits(i); !ok {
			return v.fail()
		}
	}
	return i
}
