package redis

import (
	"context"
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed append.lua
	appendSource string

	//go:embed snapshot.lua
	snapshotSource string

	//go:embed load.lua
	loadSource string

	//go:embed archive.lua
	archiveSource string
)

// script is a Lua script run by EVALSHA, falling back to EVAL when the
// server answers NOSCRIPT (after a restart or SCRIPT FLUSH). NOSCRIPT means
// the script did not run, so the fallback never runs a write twice.
type script struct {
	src string
	sha string
}

var (
	appendScript   = newScript(appendSource)
	snapshotScript = newScript(snapshotSource)
	loadScript     = newScript(loadSource)
	archiveScript  = newScript(archiveSource)

	allScripts = []*script{appendScript, snapshotScript, loadScript, archiveScript}
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

// run runs s with keys and args. A write (write true) is sent at most
// once: go-redis does not retry it, and a network error after it may have
// been sent is returned as is, for writeError to classify.
func (p *Persistence) run(
	ctx context.Context, s *script, write bool, keys []string, args ...any,
) (any, error) {
	res, err := p.eval(ctx, "evalsha", s.sha, write, keys, args)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		res, err = p.eval(ctx, "eval", s.src, write, keys, args)
	}
	return res, err
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
