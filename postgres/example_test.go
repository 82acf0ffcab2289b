package postgres_test

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kode4food/timebox"
	"github.com/kode4food/timebox/postgres"
)

// Open a store on PostgreSQL, append an event and read it back. The
// example is compiled always and run by TestExampleNewPersistence where
// the server is reachable.
func ExampleNewPersistence() {
	p, err := postgres.NewPersistence(postgres.Config{
		URL:    os.Getenv("DATABASE_URL"), // postgres://user@host:5432/db
		Prefix: "orders-example",
	})
	if err != nil {
		panic(err)
	}
	store, err := p.NewStore(timebox.Config{})
	if err != nil {
		panic(err)
	}
	defer func() { _ = store.Close() }() // closes p too

	id := timebox.NewAggregateID("order", "1")
	err = store.AppendEvents(id, 0, []*timebox.Event{
		{Timestamp: time.Now(), Type: "order.created", Data: []byte(`{"total":42}`)},
	})
	if err != nil {
		panic(err)
	}
	evs, err := store.GetEvents(id, 0)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(evs), evs[0].Type, string(evs[0].Data))
}

// TestExampleNewPersistence runs the example on the test server and
// checks what it prints.
func TestExampleNewPersistence(t *testing.T) {
	cfg := testConfig(t)
	t.Setenv("DATABASE_URL", cfg.URL)
	dropPrefix(t, cfg.URL, "orders-example")
	t.Cleanup(func() { dropPrefix(t, cfg.URL, "orders-example") })

	r, w, err := os.Pipe()
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = w
	func() {
		defer func() { os.Stdout = stdout }()
		ExampleNewPersistence()
	}()
	require.NoError(t, w.Close())
	out, err := io.ReadAll(r)
	require.NoError(t, err)
	require.Equal(t, `1 order.created {"total":42}`, strings.TrimSpace(string(out)))
}
