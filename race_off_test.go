//go:build !race

package timebox_test

const raceEnabled = false
