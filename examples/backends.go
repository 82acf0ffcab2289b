package main

import (
	"fmt"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/memory"
)

// openStore opens a store on the named backend.
func openStore(backend string, cfg timebox.Config) (*timebox.Store, error) {
	switch backend {
	case "memory":
		return memory.NewPersistence().NewStore(cfg)
	case "redis", "postgres", "raft":
		return nil, fmt.Errorf("backend %q is not available yet", backend)
	default:
		return nil, fmt.Errorf("unknown backend %q (want memory, redis, postgres or raft)", backend)
	}
}
