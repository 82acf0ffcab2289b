package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// go-redis logs through one process-global logger (redis.SetLogger), which
// prints to stderr by default: "failed to dial after 5 attempts" and the
// like, for failures the caller also gets as errors. The backend replaces
// it once, at the first NewPersistence, with goRedisLogger, which passes
// each line to slog at debug level. A line cannot be told apart by store,
// so it goes to the Config.Logger of the Persistence opened last (with one
// per process, the usual case, that is its Logger). A program that calls
// redis.SetLogger itself after opening a Persistence takes the lines back.
var (
	bridgeOnce   sync.Once
	bridgeLogger atomic.Pointer[slog.Logger]
)

// bridgeLogs routes go-redis's logger to l (nil: slog.Default()).
func bridgeLogs(l *slog.Logger) {
	bridgeLogger.Store(l)
	bridgeOnce.Do(func() { redis.SetLogger(goRedisLogger{}) })
}

type goRedisLogger struct{}

// Printf implements go-redis's internal.Logging.
func (goRedisLogger) Printf(ctx context.Context, format string, v ...any) {
	l := bridgeLogger.Load()
	if l == nil {
		l = slog.Default()
	}
	if !l.Enabled(ctx, slog.LevelDebug) {
		return
	}
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	l.DebugContext(ctx, msg, slog.String("source", "go-redis"))
}
