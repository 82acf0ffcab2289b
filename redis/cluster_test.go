package redis

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/internal/conformance"
)

// TestCluster starts a three-master Redis Cluster. With Shard set, every
// key of a store shares one slot and the whole conformance suite passes;
// without it, NewPersistence refuses the cluster with ErrShardRequired
// rather than let scripts fail with CROSSSLOT later.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	addrs := startCluster(t)
	seeds := strings.Join(addrs, ",")

	t.Run("ShardRequired", func(t *testing.T) {
		for _, addr := range []string{seeds, addrs[1]} {
			p, err := NewPersistence(Config{Addr: addr})
			require.ErrorIs(t, err, ErrShardRequired, "addr %s", addr)
			require.Nil(t, p)
		}
	})

	t.Run("OnlyDB0", func(t *testing.T) {
		p, err := NewPersistence(Config{Addr: seeds, Shard: "s", DB: 1})
		require.ErrorIs(t, err, ErrInvalidDB)
		require.Nil(t, p)
	})

	t.Run("Conformance", func(t *testing.T) {
		conformance.Run(t, conformance.Suite{
			New: func(t *testing.T, cfg timebox.Config) *timebox.Store {
				return newStore(t, Config{Addr: seeds, Shard: "tb"}, cfg)
			},
			Archiving: true,
		})
	})

	t.Run("Feed", func(t *testing.T) {
		testFeed(t, Config{Addr: seeds, Shard: "feed"})
	})

	t.Run("SlotMidMigration", func(t *testing.T) {
		testSlotMidMigration(t, addrs, seeds)
	})

	t.Run("SingleSeed", func(t *testing.T) {
		st := newStore(t, Config{Addr: addrs[2], Shard: "other"}, timebox.Config{})
		id := timebox.NewAggregateID("seed")
		require.NoError(t, st.AppendEvents(id, 0, []*timebox.Event{event("x")}))
		ids, err := st.ListAggregates(nil)
		require.NoError(t, err)
		require.Equal(t, []timebox.AggregateID{id}, ids)
	})
}
