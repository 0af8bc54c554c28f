package sqlshared

import (
	"context"
	"time"

	"github.com/uptrust/uptrust/internal/store"
	"github.com/uptrust/uptrust/internal/store/sqldevice"
	"github.com/uptrust/uptrust/internal/store/sqlrow"
)

// minStorable is the earliest time the encodings can hold; nothing stored
// is older, so purging before it deletes nothing.
var minStorable = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)

// Purge deletes the rows of table older than before, in one statement on
// db, and returns how many it deleted; see store.Store for what "older"
// means per table. The audit log goes to purgeAudit, which the store gives:
// moving the chain's anchor needs the store's transaction and locking. A
// table that is not purgeable is store.ErrNotPurgeable and deletes nothing.
func Purge(ctx context.Context, db DB, table string, before time.Time,
	purgeAudit func(ctx context.Context, before time.Time) (int64, error)) (int64, error) {
	what := "purge " + table
	var query, arg string
	var err error
	switch {
	case table != store.TableReportCounts && table != store.TableAudit && table != store.TableTokens &&
		table != store.TableDeviceEvents && table != store.TableDeviceNonces:
		return 0, errorf(db, what, "%w", store.ErrNotPurgeable)
	case before.Before(minStorable):
		return 0, nil
	case table == store.TableDeviceEvents:
		return sqldevice.PurgeEvents(ctx, db, before)
	case table == store.TableDeviceNonces:
		return sqldevice.PurgeNonces(ctx, db, before)
	case table == store.TableAudit:
		return purgeAudit(ctx, before)
	case table == store.TableReportCounts:
		// A counter of day D holds reports from [D, D+24h). It goes once D
		// is before before rounded up to a whole day.
		b := before.UTC()
		day := b.Truncate(24 * time.Hour)
		if day.Before(b) {
			day = day.Add(24 * time.Hour)
		}
		query = `DELETE FROM report_counts WHERE day < $1`
		arg, err = sqlrow.EncodeDay(day)
	default:
		query = `DELETE FROM tokens WHERE (revoked <> '' AND revoked < $1) OR expires < $1`
		arg, err = sqlrow.EncodeTime(before)
	}
	if err != nil {
		return 0, errorf(db, what, "%w", err)
	}
	n, err := db.Exec(ctx, query, arg)
	if err != nil {
		return 0, db.Err(ctx, what, err)
	}
	return n, nil
}
