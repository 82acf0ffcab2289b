package redis

import (
	"context"
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	// batchesSource is prepended to the scripts that read batches.
	//go:embed batches.lua
	batchesSource string

	//go:embed append.lua
	appendSource string

	//go:embed snapshot.lua
	snapshotSource string

	//go:embed load.lua
	loadSource string

	//go:embed archive.lua
	archiveSource string

	//go:embed consumer.lua
	consumerSource string
)

// script is a Lua script run by EVALSHA, falling back to EVAL when the
// server answers NOSCRIPT (after a restart or SCRIPT FLUSH). NOSCRIPT means
// the script did not run, so the fallback never runs a write twice.
type script struct {
	src string
	sha string
}

var (
	appendScript   = newScript(batchesSource + appendSource)
	snapshotScript = newScript(snapshotSource)
	loadScript     = newScript(batchesSource + loadSource)
	archiveScript  = newScript(batchesSource + archiveSource)
	consumerScript = newScript(consumerSource)

	allScripts = []*script{
		appendScript, snapshotScript, loadScript, archiveScript, consumerScript,
	}
)

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{src: src, sha: hex.EncodeToString(sum[:])}
}

// noRetryCmd is a command go-redis must not send again after a network
// error: the first copy may have run, and a second would apply a write
// twice.
type noRetryCmd struct {
	*redis.Cmd
}

// NoRetry implements redis.Cmder.
func (noRetryCmd) NoRetry() bool {
	return true
}

// Backoff bounds for resending a write the cluster refused to start.
const (
	retryFirst = 5 * time.Millisecond
	retryLast  = 640 * time.Millisecond
)

// run runs s with keys and args. A write (write true) is sent at most
// once per attempt: go-redis does not retry it, and a network error after
// it may have been sent is returned as is, for writeError to classify. A
// write the cluster refused to start (TRYAGAIN while its slot migrates,
// CLUSTERDOWN) did not run, so run sends it again with a backoff, for
// about a second at most and never past ctx.
func (p *Persistence) run(
	ctx context.Context, s *script, write bool, keys []string, args ...any,
) (any, error) {
	for wait := retryFirst; ; wait *= 2 {
		res, err := p.runOnce(ctx, s, write, keys, args)
		if !write || !refused(err) || wait > retryLast {
			return res, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, err
		case <-t.C:
		}
	}
}

func (p *Persistence) runOnce(
	ctx context.Context, s *script, write bool, keys []string, args []any,
) (any, error) {
	res, err := p.eval(ctx, "evalsha", s.sha, write, keys, args)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		res, err = p.eval(ctx, "eval", s.src, write, keys, args)
	}
	return res, err
}

// rerouted reports whether err is a cluster's redirection (ASK, MOVED:
// go-redis follows a few, and returns the last while a slot keeps moving)
// or refusal of a call that therefore did not run.
func rerouted(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) || inScript(rerr) {
		return false
	}
	return refused(err) || redis.HasErrorPrefix(err, "ASK") ||
		redis.HasErrorPrefix(err, "MOVED")
}

// refused reports whether err is a cluster's refusal to start a script:
// the script did not run, and may run once the cluster settles.
func refused(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) || inScript(rerr) {
		return false
	}
	return redis.HasErrorPrefix(err, "TRYAGAIN") || redis.HasErrorPrefix(err, "CLUSTERDOWN")
}

func (p *Persistence) eval(
	ctx context.Context, name, body string, write bool, keys []string, args []any,
) (any, error) {
	all := make([]any, 0, 3+len(keys)+len(args))
	all = append(all, name, body, len(keys))
	for _, k := range keys {
		all = append(all, k)
	}
	all = append(all, args...)
	cmd := redis.NewCmd(ctx, all...)
	var c redis.Cmder = cmd
	if write {
		c = noRetryCmd{cmd}
	}
	_ = p.client.Process(ctx, c)
	return cmd.Result()
}

// loadScripts loads every script on every master, so the first EVALSHA of
// each finds it.
func (p *Persistence) loadScripts(ctx context.Context) error {
	for _, s := range allScripts {
		sha, err := p.client.ScriptLoad(ctx, s.src).Result()
		if err != nil {
			return fmt.Errorf("redis: load scripts: %w", err)
		}
		if !strings.EqualFold(sha, s.sha) {
			return fmt.Errorf("redis: load scripts: server hash %s, want %s", sha, s.sha)
		}
	}
	return nil
}
