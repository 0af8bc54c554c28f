package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/uptrust/uptrust/internal/agent"
	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/release"
	"github.com/uptrust/uptrust/internal/report"
)

// TestOwnerShortenedSupportRefused: the server refuses to shorten the
// support period; a declaration signed with the product key anyway is
// refused by the device, which keeps the promise it accepted, says so in
// status, reports it once and tells the owner once, and keeps updating.
func TestOwnerShortenedSupportRefused(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, worldOptions{})
	d := w.device("d", 0)
	events := notifyHook(t, d)
	w.cycle(d)
	promised, err := w.p.Support(ctx, product)
	if err != nil {
		t.Fatal(err)
	}
	if st := status(t, d); st.SupportUntil != promised.Until {
		t.Fatalf("device accepted support until %q, want %q", st.SupportUntil, promised.Until)
	}
	end, _ := release.ParseDate(promised.Until)
	shorter := end.AddDate(-1, 0, 0).Format(time.DateOnly)

	if _, err := w.p.ExtendSupport(ctx, product, shorter); !errors.Is(err, release.ErrSupportShortened) {
		t.Fatalf("the project shortened support: %v", err)
	}
	forgeSupport(t, w, shorter)
	if now, err := w.p.Support(ctx, product); err != nil || now.Until != shorter {
		t.Fatalf("the forged declaration is not published: %+v %v", now, err)
	}

	for range 2 {
		w.cycle(d)
	}
	st := w.assertRunning(d, "1.0.0")
	if st.SupportUntil != promised.Until || st.SupportRefused == nil || st.SupportRefused.OfferedUntil != shorter ||
		st.SupportRefused.AcceptedUntil != promised.Until {
		t.Fatalf("support in status: until %q, refused %+v", st.SupportUntil, st.SupportRefused)
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "ending on "+shorter+", earlier than the "+promised.Until+" accepted") {
		t.Fatalf("warnings: %q", st.Warnings)
	}
	if n := w.reportCount("rejected", report.ClassSupportShortened); n != 1 {
		t.Fatalf("%d rejected/support-shortened reports, want 1", n)
	}
	e := only(events(), agent.EventSupportShortened)
	if len(e) != 1 || e[0].OfferedUntil != shorter || e[0].SupportUntil != promised.Until || e[0].Version != "1.0.0" {
		t.Fatalf("support-shortened events: %+v", e)
	}

	// Updates go on.
	w.publish("1.1.0", 2, release.KindSecurity)
	w.rollout("1.1.0", 100)
	w.cycle(d)
	st = w.assertRunning(d, "1.1.0")
	if st.SupportUntil != promised.Until || w.reportCount("rejected", report.ClassSupportShortened) != 1 || len(only(events(), agent.EventSupportShortened)) != 1 {
		t.Fatalf("after an update: support %q, %d reports, events %+v", st.SupportUntil, w.reportCount("rejected", report.ClassSupportShortened), events())
	}
}

// TestOwnerSupportEndingAndEnded: the owner hears that support ends within
// 90 days, and that it ended; a device past its support end keeps
// installing releases the maker signs, and accepts an extension.
func TestOwnerSupportEndingAndEnded(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, worldOptions{})
	today := time.Now().UTC()
	soon := today.AddDate(0, 0, 30).Format(time.DateOnly)
	ended := today.AddDate(0, 0, -10).Format(time.DateOnly)
	for name, until := range map[string]string{"lamp": soon, "oldlamp": ended} {
		if err := w.p.AddProduct(ctx, project.ProductSpec{Name: name, Hardware: []string{hardware}, SupportUntil: until, Contact: "support@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	w.publishSpec(project.ReleaseSpec{Product: "oldlamp", Version: "1.1.0", Kind: release.KindSecurity, SecurityVersion: 2})
	if _, err := w.p.StartRollout(ctx, "oldlamp", "1.1.0", 100); err != nil {
		t.Fatal(err)
	}
	w.reload()
	lamp, old := w.deviceOf("lamp-1", "lamp"), w.deviceOf("oldlamp-1", "oldlamp")
	lampEvents, oldEvents := notifyHook(t, lamp), notifyHook(t, old)

	for range 2 {
		w.cycle(lamp)
	}
	st := status(t, lamp)
	if st.SupportUntil != soon || st.SupportEnded || len(st.Warnings) != 0 {
		t.Fatalf("lamp status: %+v", st)
	}
	e := only(lampEvents(), agent.EventSupportEnding)
	if len(e) != 1 || e[0].SupportUntil != soon || e[0].Contact != "support@example.com" || !strings.Contains(e[0].Message, "ends on "+soon) {
		t.Fatalf("support-ending events: %+v", lampEvents())
	}
	longer := today.AddDate(2, 0, 0).Format(time.DateOnly)
	if _, err := w.p.ExtendSupport(ctx, "lamp", longer); err != nil {
		t.Fatal(err)
	}
	w.reload()
	w.cycle(lamp)
	if st := status(t, lamp); st.SupportUntil != longer {
		t.Fatalf("lamp did not accept the extension: %+v", st)
	}

	w.cycle(old)
	st = w.assertRunning(old, "1.1.0")
	if !st.SupportEnded || st.SupportUntil != ended || len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "ended on "+ended) {
		t.Fatalf("oldlamp status: %+v", st)
	}
	code, out, _ := ownerCLI(t, old, "", time.Now(), "status")
	if code != 0 || !strings.Contains(out, "supported until:  "+ended+" (ended; releases the maker still signs are installed)") {
		t.Fatalf("oldlamp status text: %d\n%s", code, out)
	}
	w.cycle(old)
	if e := only(oldEvents(), agent.EventSupportEnded); len(e) != 1 || e[0].SupportUntil != ended {
		t.Fatalf("support-ended events: %+v", oldEvents())
	}
}
