package config

import (
	"fmt"
	"strings"
)

// expand replaces ${NAME} and ${NAME:-default} in one scalar value:
//
//   - ${NAME} is the variable's value; unset is an error (reported in missing), set
//     but empty is the empty string.
//   - ${NAME:-default} is the variable's value, or default when it is unset or
//     empty (as in the shell). The default is taken literally.
//   - $${ is a literal "${", for values that need the characters themselves.
//   - A "$" not followed by "{" is kept as it is, so passwords with "$" survive.
//
// It runs on scalars after YAML parsing, so a variable's value can never add keys
// or list items to the file. Errors name variables, never their values.
func expand(s string, env func(string) (string, bool)) (out string, missing []string, err error) {
	if !strings.Contains(s, "${") {
		return s, nil, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			b.WriteByte(s[i])
			i++
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", nil, fmt.Errorf("unterminated ${ at offset %d; write ${NAME} or ${NAME:-default} (or $${ for a literal ${)", i)
		}
		expr := s[i+2 : i+end]
		i += end + 1
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return "", nil, fmt.Errorf("invalid variable name %q in ${%s}; names are letters, digits and _, not starting with a digit", name, expr)
		}
		v, ok := env(name)
		switch {
		case hasDef && v == "":
			b.WriteString(def)
		case !ok:
			missing = append(missing, name)
		default:
			b.WriteString(v)
		}
	}
	return b.String(), missing, nil
}

func validEnvName(name string) bool {
	if name == "" {
		return false
	}
	for i, c := range name {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
