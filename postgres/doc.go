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
// Every store lives in three shared tables, timebox_events,
// timebox_snapshot and timebox_index, under its Prefix; [NewPersistence]
// creates them when they are missing, safely when many processes open at
// once. Each append is one statement and one round trip; conflicts come
// back as *timebox.VersionConflictError with the events the caller
// missed. Archiving is not supported: the Store returns
// timebox.ErrArchivingDisabled. DESIGN.md describes the schema, the
// append and what a crash leaves behind.
package postgres
