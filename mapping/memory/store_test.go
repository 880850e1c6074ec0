package memory_test

import (
	"context"
	"testing"

	"github.com/understudy/understudy/mapping"
	"github.com/understudy/understudy/mapping/mappingtest"
	"github.com/understudy/understudy/mapping/memory"
)

func TestStore(t *testing.T) {
	mappingtest.Run(t, func(*testing.T) mapping.Store { return memory.New() })
}

func TestOpenByURL(t *testing.T) {
	s, err := mapping.Open(context.Background(), "memory:")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*memory.Store); !ok {
		t.Fatalf("Open(memory:) = %T", s)
	}
	_ = s.Close()
}
