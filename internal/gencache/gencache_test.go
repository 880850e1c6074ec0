package gencache

import "testing"

func TestBoundedAndKeepsWhatIsUsed(t *testing.T) {
	m := New[int, int](100)
	for i := range 1000 {
		m.Put(i, i*2)
		if _, ok := m.Get(0); !ok { // in use all along: promoted each generation
			t.Fatalf("key 0 dropped after %d puts", i)
		}
	}
	if n := m.Len(); n > 200 {
		t.Errorf("Len = %d, bound 200", n)
	}
	if _, ok := m.Get(1); ok {
		t.Error("key 1, unused for 9 generations, is still there")
	}
	if v, ok := m.Get(999); !ok || v != 1998 {
		t.Errorf("Get(999) = %d, %v", v, ok)
	}
	m.DeleteFunc(func(k int) bool { return k%2 == 1 })
	if _, ok := m.Get(999); ok {
		t.Error("DeleteFunc left an odd key")
	}
	if _, ok := m.Get(998); !ok {
		t.Error("DeleteFunc dropped an even key")
	}
}
