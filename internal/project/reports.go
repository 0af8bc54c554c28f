package project

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/uptrust/uptrust/internal/report"
)

// ReportRow is the number of anonymous reports about one release ×
// outcome × error class, summed over the days within retention.
//
// Invariant: a sum below the threshold k is never in the row. Count is nil
// and FewerThan is k; otherwise Count holds the sum and FewerThan is 0.
// Operators share these numbers, and a small exact number could single out
// one device's owner.
type ReportRow struct {
	Product    string         `json:"product"`
	Version    string         `json:"version"`
	Outcome    report.Outcome `json:"outcome"`
	ErrorClass report.Class   `json:"error_class"`
	Count      *int64         `json:"count"`
	FewerThan  int            `json:"fewer_than,omitempty"`
}

// ReportSummary is what Reports returns.
type ReportSummary struct {
	// K is the threshold applied: sums below it are not shown.
	K int `json:"k"`
	// Retention is how far back the summed counters reach.
	Retention Period `json:"retention"`
	// Rows are ordered by product, version, outcome, error class.
	Rows []ReportRow `json:"counters"`
}

// ErrBelowReportK is returned by Reports for a k below the report_k in
// effect.
var ErrBelowReportK = errors.New("below the project's report_k")

// Reports sums the report counters of product (all products when "") per
// release × outcome × error class over the days within the report counter
// retention, leaving out counters Purge would delete now. Sums below k are
// replaced by "fewer than k" (see ReportRow). k of 0 means the project's
// report_k; a smaller k than report_k is refused, so the threshold the
// privacy report states holds for everything this shows. There are no
// totals: an exact total beside exact rows would give away the hidden ones.
func (p *Project) Reports(ctx context.Context, product string, k int) (ReportSummary, error) {
	rs, err := p.Runtime(ctx)
	if err != nil {
		return ReportSummary{}, fmt.Errorf("project: reports: %w", err)
	}
	if k == 0 {
		k = rs.ReportK
	}
	if k < rs.ReportK {
		return ReportSummary{}, fmt.Errorf("project: reports: k %d is %w %d (lower it with uptrust settings set --report-k to change it)", k, ErrBelowReportK, rs.ReportK)
	}
	counts, err := p.Store.ReportCounts(ctx)
	if err != nil {
		return ReportSummary{}, fmt.Errorf("project: reports: %w", err)
	}
	ret := rs.Retention.ReportCounts
	// The same rule as store.Store.Purge: a counter whose day began before
	// the bound may hold older reports.
	before := p.Clock.Now().UTC().Add(-time.Duration(ret))
	type key struct{ product, version, outcome, class string }
	sums := map[key]int64{}
	for _, c := range counts {
		if product != "" && c.Product != product || c.Day.Before(before) {
			continue
		}
		sums[key{c.Product, c.Version, c.Outcome, c.ErrorClass}] += c.Count
	}
	if len(sums) == 0 {
		// Nothing counted: say so when the name is a typo.
		if err := p.CheckProduct(ctx, product); err != nil {
			return ReportSummary{}, err
		}
	}
	sum := ReportSummary{K: k, Retention: ret, Rows: make([]ReportRow, 0, len(sums))}
	for kk, n := range sums {
		row := ReportRow{Product: kk.product, Version: kk.version, Outcome: report.Outcome(kk.outcome), ErrorClass: report.Class(kk.class)}
		if n < int64(k) {
			row.FewerThan = k
		} else {
			row.Count = &n
		}
		sum.Rows = append(sum.Rows, row)
	}
	slices.SortFunc(sum.Rows, func(a, b ReportRow) int {
		return cmp.Or(cmp.Compare(a.Product, b.Product), cmp.Compare(a.Version, b.Version),
			cmp.Compare(a.Outcome, b.Outcome), cmp.Compare(a.ErrorClass, b.ErrorClass))
	})
	return sum, nil
}
