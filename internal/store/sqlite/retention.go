package sqlite

import (
	"context"
	"strings"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqlshared"
)

// This file holds what the privacy side of the server needs from the
// database: the audit log, age-based purging and a description of the live
// schema generated from its "-- purpose:" comments.

// Purge deletes the rows of table older than before, in one statement
// on the writer connection (the audit log: in one transaction, see purgeAudit), and
// returns how many it deleted; the SQL is in internal/store/sqlshared. See
// store.Store for what "older" means per table. It does not change the
// generation.
func (s *Store) Purge(ctx context.Context, table string, before time.Time) (int64, error) {
	return sqlshared.Purge(ctx, db{s.w}, table, before, s.purgeAudit)
}

// purposeMarker starts a purpose comment in the schema; see schema.go.
const purposeMarker = "-- purpose:"

// Describe returns every table of the live database, read from
// sqlite_master and pragma_table_info, so it lists whatever the file holds,
// including tables this program did not create. Purposes come from the
// "-- purpose:" comments in each table's CREATE statement: the table's from
// its first line, a column's from the line that starts with the column's
// name. Where there is no such comment the purpose is "".
func (s *Store) Describe(ctx context.Context) ([]store.Table, error) {
	type ddl struct{ name, sql string }
	defs, err := queryAll(ctx, s.r, "describe", `SELECT name, coalesce(sql, '') FROM sqlite_master
		WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`,
		func(sc scanner) (ddl, error) {
			var d ddl
			err := sc.Scan(&d.name, &d.sql)
			return d, err
		})
	if err != nil {
		return nil, err
	}
	tables := make([]store.Table, 0, len(defs))
	for _, d := range defs {
		cols, err := queryAll(ctx, s.r, "describe "+d.name,
			`SELECT name, type FROM pragma_table_info(?) ORDER BY cid`,
			func(sc scanner) (store.Column, error) {
				var c store.Column
				err := sc.Scan(&c.Name, &c.Type)
				return c, err
			}, d.name)
		if err != nil {
			return nil, err
		}
		tables = append(tables, describeTable(d.name, d.sql, cols))
	}
	return tables, nil
}

// describeTable fills in the purposes of a table and its columns from its
// CREATE statement.
func describeTable(name, ddl string, cols []store.Column) store.Table {
	t := store.Table{Name: name, Columns: cols}
	lines := strings.Split(ddl, "\n")
	t.Purpose = purposeOf(lines[0])
	byName := make(map[string]int, len(cols))
	for i, c := range cols {
		byName[strings.ToLower(c.Name)] = i
	}
	for _, l := range lines[1:] {
		i, ok := byName[strings.ToLower(leadingIdent(l))]
		if !ok || t.Columns[i].Purpose != "" {
			continue
		}
		t.Columns[i].Purpose = purposeOf(l)
	}
	return t
}

// purposeOf returns the text after the purpose marker on line, or "".
func purposeOf(line string) string {
	_, after, ok := strings.Cut(line, purposeMarker)
	if !ok {
		return ""
	}
	return strings.TrimSpace(after)
}

// leadingIdent returns the first identifier of a line of a CREATE TABLE
// statement, without SQL quotes.
func leadingIdent(line string) string {
	l := strings.TrimSpace(line)
	if l == "" {
		return ""
	}
	if closer, ok := map[byte]byte{'"': '"', '`': '`', '[': ']'}[l[0]]; ok {
		if end := strings.IndexByte(l[1:], closer); end >= 0 {
			return l[1 : 1+end]
		}
		return ""
	}
	end := strings.IndexFunc(l, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
	if end < 0 {
		return l
	}
	return l[:end]
}
