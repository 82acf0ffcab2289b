package timebox

type (
	// Handler consumes one event, for archive handlers, publishers and
	// other readers of the log.
	Handler func(*Event) error
)

// MakeHandler adapts a function taking the decoded event payload to a
// Handler. An event whose Data does not decode into a T is an error.
func MakeHandler[T any](fn func(*Event, T) error) Handler {
	return func(ev *Event) error {
		data, err := GetEventValue[T](ev)
		if err != nil {
			return err
		}
		return fn(ev, data)
	}
}

// MakeDispatcher returns a Handler that passes each event to the handler
// registered for its type, and ignores events of other types.
func MakeDispatcher(handlers map[EventType]Handler) Handler {
	return func(ev *Event) error {
		if h, ok := handlers[ev.Type]; ok {
			return h(ev)
		}
		return nil
	}
}
