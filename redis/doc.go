// Package redis is a Timebox backend on Redis, standalone or Redis
// Cluster, through github.com/redis/go-redis/v9. Redis 7.0 is what the
// tests run against; Valkey 7.2+ and later Redis versions are expected to
// work (the backend uses only commands Redis 7.0 has).
//
// Open one with [NewPersistence] and make stores with
// [Persistence.NewStore]. [Config] says where the data lives (Addr, or a
// redis:// or rediss:// URL), how to authenticate, and how keys are named
// (Prefix, and Shard on a cluster).
//
// Appends ([Persistence.Append]), snapshots ([Persistence.SaveSnapshot])
// and archive moves ([Persistence.Archive]) are Lua scripts, so each is one
// atomic step and one round trip. Every key a script touches is named in
// its KEYS, each script checks before it writes, and adds before it
// removes, so a cluster slot moving mid-flight stops a script before its
// first write or not at all. A write whose reply is lost, or that failed
// after it began writing (say, a key of the store overwritten by another
// program), returns an error matching timebox.ErrUnknownOutcome; any other
// error means nothing was written.
//
// The store's feed ([Persistence.ReadFeed], for Store.ReadAll, Subscribe
// and Consume) is a Redis stream to which the append script adds each
// batch in the same atomic step; durable consumers' checkpoints and leases
// are hashes in the store's slot, each change one script timed by the
// server's clock. Trimming and archiving leave the feed alone.
//
// Archive records go through a Redis stream with a consumer group
// ([Persistence.ConsumeArchive]). DESIGN.md describes the key layout, the
// scripts and what a crash leaves behind.
package redis
