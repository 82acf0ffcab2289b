//go:build race

package timebox_test

// raceEnabled: the race detector drops sync.Pool items at random, so
// allocation counts of pooled paths vary.
const raceEnabled = true
