// Package suggest finds the word a typo probably meant, for "did you mean …?" hints
// in config and rule errors.
package suggest

import "strings"

// Closest returns the candidate nearest to got (case-insensitive edit distance)
// when it is close enough to be a typo: at most a third of got's length, at least
// 1 and at most 3 edits. Otherwise "".
func Closest(got string, candidates []string) string {
	best, bestDist := "", -1
	for _, c := range candidates {
		d := Distance(strings.ToLower(got), strings.ToLower(c))
		if bestDist < 0 || d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := min(max(len(got)/3, 1), 3)
	if bestDist < 0 || bestDist > limit {
		return ""
	}
	return best
}

// Distance is the Levenshtein distance between a and b, by bytes (config words
// are ASCII).
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
