// Package history records the operations a test issues against Timebox
// stores and checks them: the final logs are audited against what was
// acknowledged (no lost, duplicated, partial or phantom event, no gap), and
// the history is checked for linearizability with porcupine against a
// model of a per-aggregate append-only log with expected-sequence appends.
// Run drives a concurrent workload with an optional fault in the middle
// and returns a Report. RunChaos runs two workloads and a durable
// consumer (FeedRun) through a fault, and CheckFeed checks what the
// consumer handled against the final feed; see DESIGN.md.
package history
