package postgres

import (
	"context"
	"os"
	"testing"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/postgres/pgtest"
	"github.com/uptrust/uptrust/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openT(t, pgtest.URL(t))
	})
}

// openT opens dsn and fails the test on error. The caller closes it.
func openT(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}
