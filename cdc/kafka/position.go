package kafka

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/understudy/understudy/cdc"
)

// Position is the topic-mirror source's position: topic → partition → the offset
// of the next message to read (Kafka's committed-offset convention). It only moves
// forward: every Batch carries the whole map as of its last message.
type Position map[string]map[int32]int64

// Encode renders the position as canonical JSON ({"topic":{"0":42}}), which
// encoding/json writes with sorted keys, so equal positions are equal bytes.
func (p Position) Encode() cdc.Position {
	b, _ := json.Marshal(p)
	return b
}

// ParsePosition reads an encoded Position; nil or empty is the empty position.
func ParsePosition(b cdc.Position) (Position, error) {
	p := Position{}
	if len(b) == 0 {
		return p, nil
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("kafka: bad position: %w", err)
	}
	return p, nil
}

// Clone returns a deep copy.
func (p Position) Clone() Position {
	c := make(Position, len(p))
	for t, m := range p {
		c[t] = maps.Clone(m)
	}
	return c
}

func (p Position) set(topic string, part int32, next int64) {
	m := p[topic]
	if m == nil {
		m = map[int32]int64{}
		p[topic] = m
	}
	m[part] = next
}

// String renders "topic[0]=42 topic[1]=7" for status output.
func (p Position) String() string {
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(p)) {
		for _, n := range slices.Sorted(maps.Keys(p[t])) {
			parts = append(parts, fmt.Sprintf("%s[%d]=%d", t, n, p[t][n]))
		}
	}
	return strings.Join(parts, " ")
}
