package kafka

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
)

// A SCRAM client (RFC 5802) for sarama's SASL/SCRAM, so that no extra module is
// needed. Usernames are SASLprep'd only by escaping ',' and '='.

var (
	sha256New = sha256.New
	sha512New = sha512.New
)

type scramClient struct {
	h                func() hash.Hash
	user, pass       string
	nonce, firstBare string
	serverSignature  []byte
	step             int
	done             bool
}

func newSCRAM(h func() hash.Hash) *scramClient { return &scramClient{h: h} }

func (c *scramClient) Begin(user, pass, _ string) error {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	c.user, c.pass = user, pass
	c.nonce = base64.RawStdEncoding.EncodeToString(b)
	c.step, c.done = 0, false
	return nil
}

func (c *scramClient) hmac(key []byte, msg string) []byte {
	m := hmac.New(c.h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func (c *scramClient) Step(challenge string) (string, error) {
	c.step++
	switch c.step {
	case 1:
		name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.user)
		c.firstBare = "n=" + name + ",r=" + c.nonce
		return "n,," + c.firstBare, nil
	case 2:
		attrs := map[string]string{}
		for _, kv := range strings.Split(challenge, ",") {
			if len(kv) > 2 && kv[1] == '=' {
				attrs[kv[:1]] = kv[2:]
			}
		}
		nonce, salt64, iter := attrs["r"], attrs["s"], attrs["i"]
		if !strings.HasPrefix(nonce, c.nonce) {
			return "", errors.New("scram: server nonce does not extend ours")
		}
		salt, err := base64.StdEncoding.DecodeString(salt64)
		if err != nil {
			return "", fmt.Errorf("scram: salt: %w", err)
		}
		n, err := strconv.Atoi(iter)
		if err != nil || n < 1 {
			return "", errors.New("scram: bad iteration count")
		}
		salted, err := pbkdf2.Key(c.h, c.pass, salt, n, c.h().Size())
		if err != nil {
			return "", err
		}
		clientKey := c.hmac(salted, "Client Key")
		sum := c.h()
		sum.Write(clientKey)
		storedKey := sum.Sum(nil)
		final := "c=biws,r=" + nonce
		authMsg := c.firstBare + "," + challenge + "," + final
		sig := c.hmac(storedKey, authMsg)
		proof := make([]byte, len(clientKey))
		for i := range clientKey {
			proof[i] = clientKey[i] ^ sig[i]
		}
		c.serverSignature = c.hmac(c.hmac(salted, "Server Key"), authMsg)
		return final + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
	case 3:
		v, ok := strings.CutPrefix(challenge, "v=")
		if !ok {
			return "", fmt.Errorf("scram: server refused: %s", challenge)
		}
		got, err := base64.StdEncoding.DecodeString(v)
		if err != nil || !hmac.Equal(got, c.serverSignature) {
			return "", errors.New("scram: server signature does not verify")
		}
		c.done = true
		return "", nil
	}
	return "", errors.New("scram: unexpected step")
}

func (c *scramClient) Done() bool { return c.done }
