package raft

import (
	"context"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"

	"github.com/hashicorp/go-hclog"
)

// slogLogger routes Raft's hclog output to the node's *slog.Logger. Raft's
// Info messages (every election, every peer it starts replicating to) are
// logged at Debug, and so are the warnings Raft prints in the normal course
// of an election (routineWarnings), so an embedding application sees only
// Raft's real warnings and errors unless it asks for more.
type slogLogger struct {
	l    *slog.Logger
	name string
	args []any
}

var _ hclog.Logger = (*slogLogger)(nil)

func newLogger(l *slog.Logger) hclog.Logger {
	return &slogLogger{l: l.With(slog.String("component", "raft"))}
}

// routineWarnings are the messages hashicorp/raft logs at Warn although
// they are the normal course of an election: every node starts with one
// (no leader yet), and a node joining or rejoining a cluster meets the
// others' rejections until it has caught up. They are logged at Debug, as
// Raft's Info messages are. Faults (a peer that cannot be contacted, a
// leader that loses its quorum) keep their level.
var routineWarnings = map[string]bool{
	"heartbeat timeout reached, starting election":               true,
	"Election timeout reached, restarting election":              true,
	"new leader elected, stepping down":                          true,
	"rejecting vote request since we have a leader":              true,
	"rejecting pre-vote request since we have a leader":          true,
	"rejecting vote request since our last term is greater":      true,
	"rejecting vote request since our last index is greater":     true,
	"rejecting pre-vote request since our last term is greater":  true,
	"rejecting pre-vote request since our last index is greater": true,
	"duplicate requestVote from":                                 true,
	"appendEntries rejected, sending older logs":                 true,
	"failed to get previous log":                                 true,
	"previous log term mis-match":                                true,
}

func slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug - 2
	case hclog.Info:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

func (s *slogLogger) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.Warn && routineWarnings[msg] || closedConn(msg, args) {
		level = hclog.Info
	}
	lvl := slogLevel(level)
	if !s.l.Enabled(context.Background(), lvl) {
		return
	}
	if s.name != "" {
		args = append(args, "logger", s.name)
	}
	s.l.Log(context.Background(), lvl, msg, append(args, s.args...)...)
}

// closedConn reports the transport's complaint about a connection this
// node closed itself: at Close, the mux closes every connection, and the
// transport's reader reports "use of closed network connection".
func closedConn(msg string, args []any) bool {
	if msg != "failed to decode incoming command" {
		return false
	}
	for _, a := range args {
		if err, ok := a.(error); ok && errors.Is(err, net.ErrClosed) {
			return true
		}
	}
	return false
}

func (s *slogLogger) Trace(msg string, args ...any) { s.Log(hclog.Trace, msg, args...) }
func (s *slogLogger) Debug(msg string, args ...any) { s.Log(hclog.Debug, msg, args...) }
func (s *slogLogger) Info(msg string, args ...any)  { s.Log(hclog.Info, msg, args...) }
func (s *slogLogger) Warn(msg string, args ...any)  { s.Log(hclog.Warn, msg, args...) }
func (s *slogLogger) Error(msg string, args ...any) { s.Log(hclog.Error, msg, args...) }

func (s *slogLogger) enabled(level hclog.Level) bool {
	return s.l.Enabled(context.Background(), slogLevel(level))
}

func (s *slogLogger) IsTrace() bool { return s.enabled(hclog.Trace) }
func (s *slogLogger) IsDebug() bool { return s.enabled(hclog.Debug) }
func (s *slogLogger) IsInfo() bool  { return s.enabled(hclog.Info) }
func (s *slogLogger) IsWarn() bool  { return s.enabled(hclog.Warn) }
func (s *slogLogger) IsError() bool { return s.enabled(hclog.Error) }

func (s *slogLogger) ImpliedArgs() []any { return s.args }

func (s *slogLogger) With(args ...any) hclog.Logger {
	c := *s
	c.args = append(append([]any(nil), s.args...), args...)
	return &c
}

func (s *slogLogger) Name() string { return s.name }

func (s *slogLogger) Named(name string) hclog.Logger {
	c := *s
	if c.name != "" {
		name = c.name + "." + name
	}
	c.name = name
	return &c
}

func (s *slogLogger) ResetNamed(name string) hclog.Logger {
	c := *s
	c.name = name
	return &c
}

// SetLevel does nothing: the slog handler decides what is logged.
func (s *slogLogger) SetLevel(hclog.Level) {}

func (s *slogLogger) GetLevel() hclog.Level {
	for _, l := range []hclog.Level{hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn} {
		if s.enabled(l) {
			return l
		}
	}
	return hclog.Error
}

func (s *slogLogger) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return slog.NewLogLogger(s.l.Handler(), slog.LevelInfo)
}

func (s *slogLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return s.StandardLogger(nil).Writer()
}
