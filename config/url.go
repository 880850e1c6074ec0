package config

import (
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
)

// storeSchemes are the URL schemes a pipeline's source or target may use, mapped to
// the family that decides whether two URLs can name the same server.
var storeSchemes = map[string]string{
	"postgres":   "postgres",
	"postgresql": "postgres",
	"mysql":      "mysql",
	"mariadb":    "mysql",
	"dynamodb":   "dynamodb",
	"kafka":      "kafka",
}

// defaultPorts fill in the port a client would use when the URL names none, so that
// "db" and "db:5432" compare equal.
var defaultPorts = map[string]string{
	"postgres": "5432",
	"mysql":    "3306",
	"kafka":    "9092",
}

// storeSchemeList is storeSchemes for error messages, in a fixed order.
const storeSchemeList = "postgres://, postgresql://, mysql://, mariadb://, dynamodb://, kafka://"

// sqlFamilies can keep checkpoints in the target's own transaction.
var sqlFamilies = map[string]bool{"postgres": true, "mysql": true}

// storeURL parses a source or target URL and returns its scheme family. A problem
// is returned as a message for the caller to place.
func storeURL(s string) (u *url.URL, family string, problem string) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || !strings.Contains(s, "://") {
		return nil, "", "is not a URL; write e.g. postgres://user@host:5432/db (schemes: " + storeSchemeList + ")"
	}
	family, ok := storeSchemes[strings.ToLower(u.Scheme)]
	if !ok {
		return nil, "", "unknown scheme \"" + u.Scheme + "\"; use one of " + storeSchemeList
	}
	// Postgres and MySQL URLs may leave the host to a Unix socket, DynamoDB to the
	// AWS endpoint of a region; Kafka has no default broker.
	if u.Host == "" && family == "kafka" {
		return nil, "", "names no broker; write e.g. kafka://broker:9092"
	}
	return u, family, ""
}

// sameStore reports whether two parsed store URLs reach the same database: the same
// family, host and port (defaults filled in, loopback names unified) and the same
// path (the database, or the user name for a Postgres URL without one, as libpq
// does). It errs towards "same": refusing a real test target is a config edit,
// writing into production is an incident.
func sameStore(a *url.URL, af string, b *url.URL, bf string) bool {
	return af == bf && storeIdentity(a, af) == storeIdentity(b, bf)
}

func storeIdentity(u *url.URL, family string) string {
	q := u.Query()
	host := strings.ToLower(u.Hostname())
	if host == "" && family != "dynamodb" {
		host = strings.ToLower(q.Get("host")) // libpq/pgx: host in the query
	}
	switch {
	case host == "" && family != "dynamodb", strings.HasPrefix(host, "/"):
		// A Unix socket is on this machine.
		host = "loopback"
	case host == "localhost", host == "127.0.0.1", host == "::1", host == "0.0.0.0", host == "::":
		host = "loopback"
	}
	port := u.Port()
	if port == "" {
		port = defaultPorts[family]
	}
	db := strings.Trim(u.Path, "/")
	if db == "" && family == "postgres" && u.User != nil {
		db = u.User.Username()
	}
	id := net.JoinHostPort(host, port) + "/" + db
	if family == "dynamodb" {
		// Which DynamoDB is meant lies in the region and endpoint; other parameters
		// (timeouts, say) must not make two URLs of one store look different.
		id += "?region=" + q.Get("region") + "&endpoint=" + q.Get("endpoint")
	}
	return id
}

// kvStoreList names the mapping and checkpoint store URL forms, for messages.
const kvStoreList = "memory, file:PATH, redis://, rediss://, dynamodb://"

// kvStoreURL checks a mapping or checkpoint store URL and returns it normalized:
// a relative file: path is made absolute against dir (the config file's
// directory), so the store does not move when understudy runs from elsewhere.
func kvStoreURL(s, dir string) (string, string) {
	lower := strings.ToLower(s)
	switch {
	case lower == "memory" || lower == "memory:" || lower == "memory://":
		// "memory" too: a bare "memory:" at the end of a YAML line needs quotes.
		return "memory:", ""
	case strings.HasPrefix(lower, "file:"):
		// Read the path the way the file stores do (url.Parse: the opaque part of
		// file:rel, the decoded path of file:/abs and file:///abs).
		u, err := url.Parse(s)
		if err != nil {
			return "", "is not a valid file URL: " + scrubURLError(err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return "", "names a host; the embedded store is local: write file:relative/path.db or file:/absolute/path.db"
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return "", "takes no parameters (nor ? or # in the file name)"
		}
		p := u.Opaque
		if p == "" {
			p = u.Path
		}
		if p == "" {
			return "", "names no file; write file:relative/path.db (relative to the config file) or file:/absolute/path.db"
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		// Escaped, so a directory with a space or '%' survives the stores' url.Parse.
		return "file:" + (&url.URL{Path: filepath.ToSlash(filepath.Clean(p))}).EscapedPath(), ""
	case strings.HasPrefix(lower, "redis://"), strings.HasPrefix(lower, "rediss://"), strings.HasPrefix(lower, "dynamodb://"):
		u, err := url.Parse(s)
		if err != nil {
			return "", "is not a valid URL: " + scrubURLError(err)
		}
		if u.Host == "" {
			return "", "names no host; write e.g. " + strings.ToLower(u.Scheme) + "://host:port"
		}
		return s, ""
	}
	return "", "is not a known store URL; use one of " + kvStoreList
}

// scrubURLError keeps only net/url's reason: its message quotes the whole URL,
// password included.
func scrubURLError(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return "malformed"
}

// Redacted returns rawURL with its password replaced by "xxxxx", for logs and status
// output: the userinfo password, and query parameters or key=value DSN fields whose
// name says they hold a secret (password, secret, token, …). A string that does not
// parse is still redacted as well as its shape allows; Redacted never returns the
// password of an input it was given.
func Redacted(rawURL string) string {
	if !strings.Contains(rawURL, "://") {
		// Postgres "host=… password=…" DSNs and opaque values like file:path.
		return dsnSecret.ReplaceAllString(rawURL, "${1}xxxxx")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// Unparseable (say, a password with a bare "%"): cut userinfo and secrets by
		// shape rather than give up.
		s := userinfoPassword.ReplaceAllString(rawURL, "${1}xxxxx@")
		return querySecret.ReplaceAllString(s, "${1}xxxxx")
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if u.RawQuery != "" {
		u.RawQuery = querySecret.ReplaceAllString(u.RawQuery, "${1}xxxxx")
	}
	return u.String()
}

// secretParam matches parameter names that carry credentials.
const secretParam = `(?i)(?:[a-z_]*password|pass|pwd|[a-z_]*secret[a-z_]*|[a-z_]*token)`

var (
	userinfoPassword = regexp.MustCompile(`(://[^/@:]*:)[^@]*@`)
	querySecret      = regexp.MustCompile(`((?:^|[?&])` + secretParam + `=)[^&#]*`)
	dsnSecret        = regexp.MustCompile(`((?:^|\s)` + secretParam + `\s*=\s*)(?:'(?:[^'\\]|\\.)*'|\S*)`)
)
