// Package postgres is a Timebox backend on PostgreSQL, through a pgx pool.
//
// Open it with [NewPersistence] and a [Config] (URL, Prefix, MaxConns),
// then make a store with [Persistence.NewStore]:
//
//	p, err := postgres.NewPersistence(postgres.Config{
//		URL:    "postgres://app@db:5432/app?sslmode=require",
//		Prefix: "orders",
//	})
//	if err != nil {
//		return err
//	}
//	store, err := p.NewStore(timebox.Config{})
//
// Every store lives in shared tables (timebox_events, timebox_snapshot,
// timebox_index, timebox_archive, timebox_feed_kept and
// timebox_consumers) under its Prefix;
// [NewPersistence] creates them when they are missing, safely when many
// processes open at once, and refuses tables it cannot use
// ([ErrSchemaMismatch]) or a schema migrated by a newer version
// ([ErrSchemaTooNew]). Each append is one statement and one round trip;
// conflicts come back as *timebox.VersionConflictError with the events the
// caller missed. [Config.Pool] takes an existing pgx pool instead of a
// URL.
//
// The feed (timebox.Store.ReadAll, Subscribe, Consume) orders events by
// the ID of the transaction that appended them and their index in the
// append, and reads only below the oldest transaction still running, so
// it never skips an event; a transaction left open anywhere in the
// cluster holds it back until it ends. Trimming and archiving keep the
// feed's events (timebox_feed_kept). Durable consumers' checkpoints and
// leases live in timebox_consumers, timed by the server's clock.
//
// Archiving moves an aggregate into timebox_archive in one transaction;
// [Persistence.ConsumeArchive] leases records to consumers across
// processes ([Config.ArchiveLease]) and is woken by LISTEN/NOTIFY.
// DESIGN.md describes the schema, the append, recovery from network
// faults, archiving, the feed and what a crash leaves behind.
package postgres
