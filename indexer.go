package timebox

import "time"

type (
	// Index is what an Indexer says about an aggregate after a batch. A nil
	// Status leaves the status alone and "" clears it; setting the status
	// the aggregate already has keeps the time it entered it. A label with
	// an empty value is removed.
	Index struct {
		Status *string
		Labels map[string]string
	}

	// Indexer derives index changes from one appended batch, which holds
	// the stored events with their sequences. It may return any number of
	// entries, nil ones included: the last non-nil Status wins and Labels
	// merge in order. It runs once per non-empty batch, and what it returns
	// is written in the same atomic step as the events.
	Indexer func([]*Event) []*Index

	// StatusEntry is an aggregate in a status, with the time it entered it.
	StatusEntry struct {
		ID        AggregateID
		Timestamp time.Time
	}
)

// IndexChange is the merged result of an Indexer for one batch, as a
// backend receives it.
type IndexChange struct {
	// Status is the new status, "" to clear it, nil to leave it alone.
	Status *string
	// StatusTime is the timestamp of the batch's last event: the time the
	// aggregate enters Status. A backend keeps the time it has for an
	// aggregate already in Status, which stays in it.
	StatusTime time.Time
	// Labels maps label to new value; "" removes the label.
	Labels map[string]string
}

// IsZero reports whether the change leaves the indexes alone.
func (c IndexChange) IsZero() bool {
	return c.Status == nil && len(c.Labels) == 0
}

func mergeIndexes(evs []*Event, entries []*Index) IndexChange {
	var res IndexChange
	for _, e := range entries {
		if e == nil {
			continue
		}
		if e.Status != nil {
			s := *e.Status
			res.Status = &s
		}
		for k, v := range e.Labels {
			if res.Labels == nil {
				res.Labels = map[string]string{}
			}
			res.Labels[k] = v
		}
	}
	if res.Status != nil {
		res.StatusTime = evs[len(evs)-1].Timestamp
	}
	return res
}
