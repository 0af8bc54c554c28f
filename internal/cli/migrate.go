package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/uptrust/uptrust/internal/cmdline"
	"github.com/uptrust/uptrust/internal/store/postgres"
	"github.com/uptrust/uptrust/internal/store/sqlite"
)

// DatabaseEnv names the project's PostgreSQL database for every command,
// overriding uptrust.json's database; --database overrides it in turn.
const DatabaseEnv = "UPTRUST_DATABASE"

// databaseFlag defines --database, defaulting to $UPTRUST_DATABASE.
func databaseFlag(fs *flag.FlagSet, env Env) *string {
	return fs.String("database", env.Getenv(DatabaseEnv),
		"postgres:// `URL` of the project's PostgreSQL database (default: $UPTRUST_DATABASE, else uptrust.json's database, else DIR/uptrust.db)")
}

// MigrationJSON is one applied migration in `uptrust migrate status --json`.
type MigrationJSON struct {
	Version int       `json:"version"`
	Applied time.Time `json:"applied"`
}

// MigrateStatusJSON is `uptrust migrate status --json`, and what
// `migrate up --json` reaches.
type MigrateStatusJSON struct {
	// Database is the uptrust.db path or the URL without its password.
	Database string `json:"database"`
	// Current is the database's schema version, 0 when empty.
	Current int `json:"current"`
	// Known is the newest version this program knows.
	Known int `json:"known"`
	// Pending is Known-Current: the migrations up would apply (negative:
	// the database is newer than this program).
	Pending int             `json:"pending"`
	Applied []MigrationJSON `json:"applied"`
}

func cmdMigrate(env Env) *cmdline.Command {
	sub := func(name, synopsis string, up bool) *cmdline.Command {
		return &cmdline.Command{Name: name, Synopsis: synopsis,
			Flags: func(fs *flag.FlagSet) cmdline.RunFunc {
				dir := dirFlag(fs, env)
				db := databaseFlag(fs, env)
				asJSON := jsonFlag(fs)
				return func(ctx context.Context, pos []string) error {
					if len(pos) != 0 {
						return usagef("migrate %s takes no arguments", name)
					}
					dsn, err := projectDatabase(*dir, *db)
					if err != nil {
						return err
					}
					if up {
						if err := migrateUp(ctx, *dir, dsn); err != nil {
							return err
						}
					}
					st, err := migrateStatus(ctx, *dir, dsn)
					if err != nil {
						return err
					}
					if *asJSON {
						return writeJSON(env.Stdout, st)
					}
					fmt.Fprintf(env.Stdout, "database %s: schema version %d, this program knows up to %d\n", st.Database, st.Current, st.Known)
					for _, a := range st.Applied {
						fmt.Fprintf(env.Stdout, "  %d  applied %s\n", a.Version, a.Applied.Format(time.RFC3339))
					}
					switch {
					case st.Pending > 0:
						fmt.Fprintf(env.Stdout, "%d migrations pending: uptrust migrate up (serve applies them at start)\n", st.Pending)
					case st.Pending < 0:
						return fmt.Errorf("migrate: %s has schema version %d, newer than this program's %d: upgrade uptrust", st.Database, st.Current, st.Known)
					default:
						fmt.Fprintln(env.Stdout, "up to date")
					}
					return nil
				}
			}}
	}
	return &cmdline.Command{Name: "migrate", Synopsis: "show or apply the database's schema migrations (serve applies them at start)",
		Long: `The database is --database, else $UPTRUST_DATABASE, else the database of DIR/uptrust.json,
else DIR/uptrust.db. Migrations run in one transaction under a lock, so servers and
migrate runs starting together apply each exactly once.`,
		Sub: []*cmdline.Command{
			sub("status", "print the schema version and the migrations applied and pending", false),
			sub("up", "apply the pending migrations", true),
		}}
}

// projectDatabase returns the PostgreSQL URL a project command uses: flag,
// else uptrust.json's database; "" means DIR/uptrust.db.
func projectDatabase(dir, flagValue string) (string, error) {
	if flagValue != "" {
		if !postgres.IsURL(flagValue) {
			return "", usagef("--database %s is not a postgres:// or postgresql:// URL", postgres.Redact(flagValue))
		}
		return flagValue, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "uptrust.json"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var cfg struct {
		Database string `json:"database"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", fmt.Errorf("migrate: %s: %v", filepath.Join(dir, "uptrust.json"), err)
	}
	return cfg.Database, nil
}

func migrateUp(ctx context.Context, dir, dsn string) error {
	if dsn != "" {
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			return err
		}
		return s.Close()
	}
	path := filepath.Join(dir, "uptrust.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("migrate: %s: no database to migrate (uptrust init creates it)", path)
	}
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		return err
	}
	return s.Close()
}

func migrateStatus(ctx context.Context, dir, dsn string) (MigrateStatusJSON, error) {
	var out MigrateStatusJSON
	if dsn != "" {
		st, err := postgres.ReadStatus(ctx, dsn)
		if err != nil {
			return out, err
		}
		out = MigrateStatusJSON{Database: postgres.Redact(dsn), Current: st.Current, Known: st.Known}
		for _, a := range st.Applied {
			out.Applied = append(out.Applied, MigrationJSON{a.Version, a.Time})
		}
	} else {
		path := filepath.Join(dir, "uptrust.db")
		cur, applied, err := sqlite.ReadStatus(ctx, path)
		if errors.Is(err, os.ErrNotExist) {
			return out, fmt.Errorf("migrate: %s does not exist (uptrust init creates it; give --database for PostgreSQL)", path)
		}
		if err != nil {
			return out, err
		}
		out = MigrateStatusJSON{Database: path, Current: cur, Known: sqlite.Known}
		for _, a := range applied {
			out.Applied = append(out.Applied, MigrationJSON{a.Version, a.Time})
		}
	}
	out.Pending = out.Known - out.Current
	if out.Applied == nil {
		out.Applied = []MigrationJSON{}
	}
	return out, nil
}
