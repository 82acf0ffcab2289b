package timebox

import (
	"context"
	"maps"
)

// Metadata is an event's optional annotations, such as a correlation ID, a
// causation ID, the actor or trace context. Keys and values may hold any
// bytes; they are stored and returned as given.
type Metadata map[string]string

type metadataKey struct{}

// WithMetadata returns a ctx carrying md laid over the metadata ctx
// already carries (md's keys win). Every event raised by a command run
// with ExecContext on the returned ctx, and every event appended with
// AppendEventsContext on it, gets this metadata, merged with the event's
// own Metadata (the event's own keys win). md is copied.
func WithMetadata(ctx context.Context, md Metadata) context.Context {
	if len(md) == 0 {
		return ctx
	}
	return context.WithValue(ctx, metadataKey{},
		mergeMetadata(maps.Clone(md), MetadataFrom(ctx)))
}

// MetadataFrom returns the metadata ctx carries (see WithMetadata), nil
// when none. The result must not be changed.
func MetadataFrom(ctx context.Context) Metadata {
	md, _ := ctx.Value(metadataKey{}).(Metadata)
	return md
}

// mergeMetadata returns own laid over base, nil when both are empty. The
// result is a new map unless one of them is empty and the other is
// returned as is.
func mergeMetadata(own, base Metadata) Metadata {
	switch {
	case len(base) == 0 && len(own) == 0:
		return nil
	case len(base) == 0:
		return own
	case len(own) == 0:
		return base
	}
	res := make(Metadata, len(base)+len(own))
	maps.Copy(res, base)
	maps.Copy(res, own)
	return res
}
