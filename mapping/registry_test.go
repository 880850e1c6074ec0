package mapping_test

import (
	"strings"
	"testing"

	"github.com/understudy/understudy/mapping"
)

func TestOpenUnknownScheme(t *testing.T) {
	_, err := mapping.Open(ctx, "mongodb://user:hunter2@host/db")
	if err == nil {
		t.Fatal("Open of an unknown scheme succeeded")
	}
	if !strings.Contains(err.Error(), "memory") || !strings.Contains(err.Error(), "available") {
		t.Errorf("error does not list the known schemes: %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
}
