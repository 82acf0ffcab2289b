package timebox

import (
	"context"
	"encoding/json"
	"slices"
	"unicode/utf8"
)

// CommandIDKey is the reserved metadata key under which every event a
// command raises records the command's ID (see WithCommandID).
const CommandIDKey = "timebox.command"

// DefaultCommandWindow is how many recent command IDs per aggregate an
// Executor remembers when Config.CommandWindow is zero.
const DefaultCommandWindow = 256

type commandIDKey struct{}

// WithCommandID returns a ctx that gives a command run with ExecContext on
// it the ID id: every event the command raises records id in its metadata
// under CommandIDKey, and a later ExecContext with the same command ID on
// the same aggregate, by any Executor in any process, does not run its
// command again but returns the aggregate's current state and no error,
// as long as the ID is among the aggregate's last Config.CommandWindow
// command IDs. That makes a client's retry of a request (same ID) safe.
//
// A command ID is recorded only by the events its command raises: a
// command that raised nothing, or failed, leaves no trace and runs again.
// Success actions do not run for a repeated command. An Executor whose
// cached state predates the first run may run the command function on
// that old state; the append's conflict then reveals the repeat and what
// it raised is dropped, never written. An empty id is no command ID.
//
// The window lives in the Executor's state of the aggregate, rebuilt from
// the events' metadata on load and on every catch-up; when the window is
// not empty the Executor's snapshots store it beside the state (as
// {"timebox.state": ..., "timebox.commands": [...]}), so it survives
// snapshots and trimming.
func WithCommandID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	ctx = context.WithValue(ctx, commandIDKey{}, id)
	return WithMetadata(ctx, Metadata{CommandIDKey: id})
}

// CommandIDFrom returns the command ID ctx carries, "" when none.
func CommandIDFrom(ctx context.Context) string {
	if ctx == nil {
		return ""
	}
	id, _ := ctx.Value(commandIDKey{}).(string)
	return id
}

// commandWindow is an aggregate's most recent command IDs, oldest first.
// It is never changed in place: record returns a new one.
type commandWindow []string

// MarshalJSON writes each ID as a JSON string or, when it is not valid
// UTF-8 (a JSON string would replace its bad bytes), as {"bytes":
// base64}, so that it survives a snapshot exactly.
func (w commandWindow) MarshalJSON() ([]byte, error) {
	items := make([]any, len(w))
	for i, id := range w {
		if utf8.ValidString(id) {
			items[i] = id
		} else {
			items[i] = rawCommandID{Bytes: []byte(id)}
		}
	}
	return json.Marshal(items)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (w *commandWindow) UnmarshalJSON(b []byte) error {
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil {
		return err
	}
	res := make(commandWindow, len(items))
	for i, item := range items {
		if len(item) > 0 && item[0] == '{' {
			var raw rawCommandID
			if err := json.Unmarshal(item, &raw); err != nil {
				return err
			}
			res[i] = string(raw.Bytes)
		} else if err := json.Unmarshal(item, &res[i]); err != nil {
			return err
		}
	}
	*w = res
	return nil
}

// rawCommandID is a command ID that is not valid UTF-8, in a snapshot.
type rawCommandID struct {
	Bytes []byte `json:"bytes"`
}

func (w commandWindow) has(id string) bool {
	return id != "" && slices.Contains(w, id)
}

// record returns w with the command IDs of evs appended, keeping the last
// limit; w itself when evs carry none.
func (w commandWindow) record(evs []*Event, limit int) commandWindow {
	var res commandWindow
	for _, ev := range evs {
		id := ev.Metadata[CommandIDKey]
		if id == "" || (len(res) > 0 && res[len(res)-1] == id) {
			continue
		}
		if res == nil {
			if len(w) > 0 && w[len(w)-1] == id {
				continue // the same command's next event
			}
			res = append(make(commandWindow, 0, len(w)+1), w...)
		}
		res = append(res, id)
	}
	if res == nil {
		return w
	}
	if len(res) > limit {
		res = slices.Clone(res[len(res)-limit:])
	}
	return res
}

// commandLimit returns the configured command window size.
func (c Config) commandLimit() int {
	if c.CommandWindow > 0 {
		return c.CommandWindow
	}
	return DefaultCommandWindow
}

// snapshotEnvelope is what an Executor stores as the snapshot of a state
// whose command window is not empty, so the window survives snapshots
// (and trimming). A state without one is stored as itself.
type snapshotEnvelope[T any] struct {
	State    T             `json:"timebox.state"`
	Commands commandWindow `json:"timebox.commands"`
}

// The keys of a snapshotEnvelope.
const (
	envelopeState    = "timebox.state"
	envelopeCommands = "timebox.commands"
)

// snapshotValue returns what to store as p's snapshot.
func snapshotValue[T any](p *projection[T]) any {
	if len(p.cmds) == 0 {
		return p.value
	}
	return snapshotEnvelope[T]{State: p.value, Commands: p.cmds}
}

// snapshotTarget decodes a snapshot stored as a state or as a
// snapshotEnvelope.
type snapshotTarget[T any] struct {
	value *T
	cmds  commandWindow
}

// UnmarshalJSON implements json.Unmarshaler. A snapshot is an envelope
// only when it is an object of exactly the two keys an envelope has,
// spelt exactly (encoding/json would match a struct's tags in any case,
// and take a state that merely holds a "timebox.state" key for one).
func (t *snapshotTarget[T]) UnmarshalJSON(b []byte) error {
	var env map[string]json.RawMessage
	if json.Unmarshal(b, &env) == nil && len(env) == 2 {
		state, ok1 := env[envelopeState]
		cmds, ok2 := env[envelopeCommands]
		if ok1 && ok2 && json.Unmarshal(cmds, &t.cmds) == nil {
			return json.Unmarshal(state, t.value)
		}
		t.cmds = nil
	}
	return json.Unmarshal(b, t.value)
}
