package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// URL is a parsed kafka:// URL, shared by the topic-mirror source, the mirror
// target and the change-event publisher (sinks/kafka).
//
//	kafka://[user:password@]broker1:9092,broker2:9092[/topicA,topicB][?option=value&…]
//
// Options (all optional):
//
//	tls=true                 connect with TLS (also implied by tls_ca / tls_cert)
//	tls_ca=/path/ca.pem      CA bundle to verify the brokers (default: system roots)
//	tls_cert=/path/cert.pem  client certificate (mutual TLS), with tls_key
//	tls_key=/path/key.pem
//	tls_insecure=true        skip certificate verification (tests only)
//	sasl=plain|scram-sha-256|scram-sha-512   SASL mechanism; user and password come
//	                         from the URL's userinfo (put them in ${ENV} in the config)
//	version=3.0.0            Kafka protocol version to speak (default 3.0.0; ≥ 0.11)
//	client_id=understudy     client id seen by the brokers
//	group=NAME               source: consumer group whose offsets are committed
//	                         (default understudy-<pipeline>)
//	start=earliest|latest    source: where a partition without a committed offset
//	                         starts (default earliest)
//	non_json=drop|pass|fail  source: policy for message values that are not JSON
//	                         (default fail)
//	rename=a:b,c:d           mirror target: write topic a to b, c to d
//	prefix=understudy        publisher: topic prefix (<prefix>.<schema>.<table>)
//	partitions=N             targets: partitions of topics understudy creates
//	                         (default: the source topic's count, else 1)
//	replication=N            targets: replication factor of created topics (default -1:
//	                         the broker's default)
//	max_message_bytes=N      targets: largest produce batch (default 1000000, under
//	                         the brokers' default message.max.bytes); raise it only
//	                         for topics whose max.message.bytes allows it
//
// Every broker needs its port when the URL has userinfo (net/url's rule); the
// default port is 9092.
type URL struct {
	Brokers  []string
	Topics   []string
	User     string
	Password string
	Query    url.Values
}

// ParseURL parses a kafka:// URL without net/url's single-host assumption.
func ParseURL(raw string) (*URL, error) {
	rest, ok := strings.CutPrefix(raw, "kafka://")
	if !ok {
		return nil, errors.New("kafka: URL must start with kafka://")
	}
	u := &URL{Query: url.Values{}}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		q, err := url.ParseQuery(rest[i+1:])
		if err != nil {
			return nil, fmt.Errorf("kafka: bad query: %v", err)
		}
		u.Query, rest = q, rest[:i]
	}
	hosts, path, _ := strings.Cut(rest, "/")
	if i := strings.LastIndexByte(hosts, '@'); i >= 0 {
		ui := hosts[:i]
		hosts = hosts[i+1:]
		user, pass, _ := strings.Cut(ui, ":")
		var err error
		if u.User, err = url.PathUnescape(user); err != nil {
			return nil, errors.New("kafka: bad user name escape")
		}
		if u.Password, err = url.PathUnescape(pass); err != nil {
			return nil, errors.New("kafka: bad password escape")
		}
	}
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if !strings.Contains(h, ":") || strings.HasSuffix(h, "]") {
			h += ":9092"
		}
		u.Brokers = append(u.Brokers, h)
	}
	if len(u.Brokers) == 0 {
		return nil, errors.New("kafka: URL names no broker; write kafka://broker:9092")
	}
	for _, t := range strings.Split(path, ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(u.Topics, t) {
			u.Topics = append(u.Topics, t)
		}
	}
	return u, nil
}

// SameCluster reports whether two URLs share a broker address (loopback names
// unified): writing to such a target could write to production.
func SameCluster(a, b *URL) bool {
	norm := func(h string) string {
		host, port, _ := strings.Cut(h, ":")
		switch strings.ToLower(host) {
		case "localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0":
			host = "loopback"
		}
		return strings.ToLower(host) + ":" + port
	}
	for _, x := range a.Brokers {
		for _, y := range b.Brokers {
			if norm(x) == norm(y) {
				return true
			}
		}
	}
	return false
}

// Config builds the sarama client configuration for the URL's options.
func (u *URL) Config() (*sarama.Config, error) {
	cfg := sarama.NewConfig()
	cfg.ClientID = "understudy"
	if id := u.Query.Get("client_id"); id != "" {
		cfg.ClientID = id
	}
	cfg.Version = sarama.V3_0_0_0
	if v := u.Query.Get("version"); v != "" {
		ver, err := sarama.ParseKafkaVersion(v)
		if err != nil {
			return nil, fmt.Errorf("kafka: version=%s: %v", v, err)
		}
		if !ver.IsAtLeast(sarama.V0_11_0_0) {
			return nil, fmt.Errorf("kafka: version=%s: understudy needs ≥ 0.11 (headers, idempotent producer)", v)
		}
		cfg.Version = ver
	}
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	q := u.Query
	tlsOn := q.Get("tls") == "true" || q.Get("tls_ca") != "" || q.Get("tls_cert") != ""
	if tlsOn {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: q.Get("tls_insecure") == "true"}
		if ca := q.Get("tls_ca"); ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, fmt.Errorf("kafka: tls_ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("kafka: tls_ca %s holds no PEM certificate", ca)
			}
			tc.RootCAs = pool
		}
		if cert := q.Get("tls_cert"); cert != "" {
			pair, err := tls.LoadX509KeyPair(cert, q.Get("tls_key"))
			if err != nil {
				return nil, fmt.Errorf("kafka: tls_cert/tls_key: %w", err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = tc
	}
	switch mech := strings.ToLower(q.Get("sasl")); mech {
	case "":
		if u.User != "" {
			return nil, errors.New("kafka: the URL has a user but no sasl= mechanism; add sasl=plain, sasl=scram-sha-256 or sasl=scram-sha-512")
		}
	case "plain", "scram-sha-256", "scram-sha-512":
		if u.User == "" {
			return nil, fmt.Errorf("kafka: sasl=%s needs user:password@ in the URL", mech)
		}
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.User = u.User
		cfg.Net.SASL.Password = u.Password
		cfg.Net.SASL.Handshake = true
		switch mech {
		case "plain":
			cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case "scram-sha-256":
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAM(sha256New) }
		case "scram-sha-512":
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAM(sha512New) }
		}
	default:
		return nil, fmt.Errorf("kafka: sasl=%s: use plain, scram-sha-256 or scram-sha-512", mech)
	}
	return cfg, nil
}
