package kafka

import "github.com/understudy/understudy/internal/jsonscan"

// validJSON reports whether b is one JSON value (with optional surrounding
// whitespace), exactly as encoding/json.Valid does, in one direct pass: it runs
// for every message the mirror reads (cdc/kafka's TestValidJSON compares the two).
func validJSON(b []byte) bool { return jsonscan.Valid(b) }
