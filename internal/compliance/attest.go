package compliance

import (
	"context"

	"github.com/uptrust/uptrust/internal/project"
	"github.com/uptrust/uptrust/internal/store"
)

// Attest records the manufacturer's attestation of a fact outside uptrust
// for one provision of a product. Only the provisions Attestable lists can
// be attested: the others are judged from the project alone. The report
// shows the newest standing attestation of an item as attested, with who
// and when, and never as met.
func Attest(ctx context.Context, p *project.Project, s project.AttestSpec) (store.Attestation, error) {
	if err := CheckItem(s.Item); err != nil {
		return store.Attestation{}, err
	}
	return p.Attest(ctx, s)
}
