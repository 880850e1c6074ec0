package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const myLeakSchema = `
CREATE TABLE people (
  id bigint unsigned NOT NULL PRIMARY KEY,
  version int NOT NULL DEFAULT 1,
  name varchar(80),
  email varchar(120) UNIQUE,
  ssn varchar(40),
  notes text,
  token varchar(80),
  legacy_pii varchar(80),
  profile json,
  photo blob
) DEFAULT CHARSET=utf8mb4;
INSERT INTO people (id, name, email, ssn, notes, token, legacy_pii, profile)
SELECT seq, CONCAT('Person ', seq), CONCAT('p', seq, '@corp.example'), CONCAT('123-45-', LPAD(seq, 4, '0')), CONCAT('note ', seq),
       CONCAT('tok-', MD5(seq)), CONCAT('legacy ', seq), JSON_OBJECT('email', CONCAT('p', seq, '@corp.example'), 'plan', 'basic')
FROM seq_1_to_300;
`

const myLeakPipeline = `
  - name: leak
    source: ${PROD_URL}
    target: ${TEST_URL}
    tables: [PROD.people]
    rules:
      PROD.people:
        name:       {replace: last_name, domain: surname}
        email:      {replace: email, domain: email}
        ssn:        {constant: "000-00-0000"}
        notes:      null
        token:      hash
        legacy_pii: drop
        photo:      null
        profile:
          json:
            $.email: {replace: email, domain: email}
            $.secret: {replace: full_name}
`

// TestMySQLCanariesLeakNowhere plants canaries in a MariaDB production's
// sensitive columns (replace, constant, null, hash, drop, JSON, a blob), loads and
// syncs with -v (streaming canaries too), and searches the target database
// (mariadb-dump, understudy's own tables included), every log, /metrics and the
// embedded mapping store's files.
func TestMySQLCanariesLeakNowhere(t *testing.T) {
	c := newCanaries(t)
	m := newMyEnv(t, myLeakSchema, "", myLeakPipeline)
	m.exec(fmt.Sprintf(`INSERT INTO people (id, name, email, ssn, notes, token, legacy_pii, profile, photo) VALUES
		(9001, '%s', '%s', '%s', '%s', '%s', '%s', '{"email": "%s", "secret": "%s", "plan": "gold"}', '%s')`,
		c["name"], c["email"], c["ssn"], c["notes"], c["token"], c["legacy"], c["email"], c["json-secret"], c["alias"]))

	m.must("load", "-v")
	metricsAddr := freeAddr(t)
	sync := m.start("sync", "-v", "--metrics", metricsAddr)
	waitFor(t, time.Minute, "/healthz answering", sync, func() bool {
		code, _, err := httpGet("http://" + metricsAddr + "/healthz")
		return err == nil && code > 0
	})
	m.exec(fmt.Sprintf(`
		UPDATE people SET version = 2, name = '%s', token = '%s', notes = '%s',
		  profile = '{"email": "%s", "secret": "%s"}' WHERE id = 9001;
		INSERT INTO people (id, version, name, email, profile) VALUES (9002, 2, '%s', '%s', '{"email": "%s"}');`,
		c["stream-name"], c["stream-token"], c["stream-notes"], c["stream-email"], c["stream-json"],
		c["stream-name"], c["stream-email"], c["stream-email"]))
	waitFor(t, time.Minute, "the streamed canary update", sync, func() bool {
		return m.count(m.testDB, "people WHERE version = 2") == 2
	})
	_, metrics, err := httpGet("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(metrics, "understudy_changes_applied_total") {
		t.Errorf("/metrics lacks understudy_changes_applied_total:\n%s", tail(metrics))
	}
	if found := c.find([]byte(metrics)); len(found) > 0 {
		t.Errorf("/metrics holds canaries %v", found)
	}
	sync.stop(t, 10*time.Second)
	if code, out := m.verify(); code != 0 {
		t.Errorf("verify: exit %d\n%s", code, out)
	}

	// Production does hold them (the search below would otherwise prove nothing).
	if found := c.find([]byte(m.mariadbDump(m.prodDB))); len(found) < 10 {
		t.Fatalf("the production dump holds only canaries %v", found)
	}
	dump := m.mariadbDump(m.testDB)
	if !strings.Contains(dump, "000-00-0000") || !strings.Contains(dump, "INSERT INTO `people`") {
		t.Fatalf("the target dump does not look like the replica (%d bytes)", len(dump))
	}
	if found := c.find([]byte(dump)); len(found) > 0 {
		t.Errorf("the target database holds canaries %v", found)
	}
	if strings.Contains(dump, "legacy_pii") {
		t.Error("the dropped column legacy_pii exists in the target")
	}

	var scanned []string
	var mappingBytes int64
	err = filepath.WalkDir(m.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned = append(scanned, filepath.Base(path))
		if strings.Contains(path, "mappings") {
			mappingBytes += int64(len(b))
		}
		if found := c.find(b); len(found) > 0 {
			t.Errorf("%s holds canaries %v", filepath.Base(path), found)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if mappingBytes == 0 {
		t.Errorf("no mapping store file was scanned (%v); the scan proves nothing", scanned)
	}
	logs := 0
	for _, l := range m.logs {
		if _, err := os.Stat(l); err == nil {
			logs++
		}
	}
	if logs < 4 {
		t.Errorf("only %d log files were scanned", logs)
	}
	t.Logf("scanned %d files (%d bytes of mapping store), a %d-byte target dump and /metrics", len(scanned), mappingBytes, len(dump))
}
