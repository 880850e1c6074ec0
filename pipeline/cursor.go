package pipeline

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
)

// CursorKey derives the key that seals snapshot chunk cursors from the
// deployment's secret. A cursor (a DynamoDB LastEvaluatedKey) can hold a
// production key value, and the checkpoint store is on the test side: it must
// not hold production plaintext, just as the mapping store holds only HMACs.
func CursorKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("understudy chunk cursor v1"))
	return m.Sum(nil)
}

// sealCursor encrypts and authenticates a cursor with AES-256-GCM.
func sealCursor(key, cursor []byte) ([]byte, error) {
	aead, err := cursorAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, cursor, nil), nil
}

// openCursor reverses sealCursor. It fails when the secret changed since the
// cursor was sealed; the chunk is then read from its start.
func openCursor(key, sealed []byte) ([]byte, error) {
	aead, err := cursorAEAD(key)
	if err != nil {
		return nil, err
	}
	n := aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("cursor too short")
	}
	return aead.Open(nil, sealed[:n], sealed[n:], nil)
}

func cursorAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
