package report

// Class is the error class of a failure: the only detail about a failure
// that leaves the device. The agent also records it in its state and shows
// it to the owner.
type Class string

// Error classes the agent sends.
const (
	// ClassNetwork: the server could not be reached or did not answer as
	// it should, or a download stalled or dropped. A check that ends in it
	// is reported as OutcomeFailed, one that ends in any other class as
	// OutcomeRejected.
	ClassNetwork           Class = "network"
	ClassMetadataExpired   Class = "metadata-expired"
	ClassMetadataSignature Class = "metadata-signature"
	ClassMetadataRollback  Class = "metadata-rollback"
	ClassMetadataInvalid   Class = "metadata-invalid"
	// ClassMetadataTooLong: a metadata document was longer than the
	// length its signed entry lists or than the agent's limit for its
	// role, and was refused before parsing.
	ClassMetadataTooLong  Class = "metadata-too-long"
	ClassRepoMismatch     Class = "repository-mismatch"
	ClassManifestInvalid  Class = "manifest-invalid"
	ClassNotApplicable    Class = "not-applicable"
	ClassRollbackVersion  Class = "rollback-version"
	ClassRollbackSecurity Class = "rollback-security-version"
	ClassPayloadHash      Class = "payload-hash-mismatch"
	ClassPayloadTooLong   Class = "payload-too-long"
	ClassPayloadTruncated Class = "payload-truncated"
	// ClassPayloadWindow: a zstd payload asks for a decoder window larger
	// than release.MaxZstdWindow.
	ClassPayloadWindow Class = "payload-window-too-large"
	// ClassPayloadDecode: a payload that matches its signed hashes is not
	// a valid zstd stream.
	ClassPayloadDecode Class = "payload-decode"
	// ClassImageHash: the decompressed image does not match the
	// manifest's image_length and image_sha256.
	ClassImageHash    Class = "image-hash-mismatch"
	ClassInstallIO    Class = "install-io"
	ClassBootloader   Class = "bootloader"
	ClassBootFallback Class = "boot-fallback"
	ClassHealthCheck  Class = "health-check"
	// ClassSupportShortened: a signed support declaration ended earlier
	// than the one accepted before; the agent kept the earlier one.
	ClassSupportShortened Class = "support-shortened"
	// ClassStateRecovered: the agent's state was unreadable and was
	// recovered from an older record or the anti-rollback floor.
	ClassStateRecovered Class = "state-recovered"
	// ClassClockBehind: the device's clock read earlier than its floor (the
	// agent's build, the provisioning or the last successful check), and
	// the agent verified metadata against the floor instead. Sent once per
	// stretch behind the floor, with OutcomeFailed about the running
	// version, besides the check's own report: a refusal keeps its own
	// class (metadata-expired, metadata-signature, ...).
	ClassClockBehind Class = "clock-behind"
	// ClassOther is never sent by an agent: the server counts a report
	// whose error class this package does not declare under it (see
	// Report.Counted).
	ClassOther Class = "other"
)

// sentClasses is every class above except ClassOther, in declaration order.
var sentClasses = []Class{
	ClassNetwork, ClassMetadataExpired, ClassMetadataSignature, ClassMetadataRollback,
	ClassMetadataInvalid, ClassMetadataTooLong, ClassRepoMismatch, ClassManifestInvalid,
	ClassNotApplicable, ClassRollbackVersion, ClassRollbackSecurity, ClassPayloadHash,
	ClassPayloadTooLong, ClassPayloadTruncated, ClassPayloadWindow, ClassPayloadDecode,
	ClassImageHash, ClassInstallIO, ClassBootloader, ClassBootFallback, ClassHealthCheck,
	ClassSupportShortened, ClassStateRecovered, ClassClockBehind,
}

// Classes returns the classes an agent of this version sends.
func Classes() []Class { return append([]Class(nil), sentClasses...) }

// Declared reports whether c is one of Classes or ClassOther.
func (c Class) Declared() bool {
	if c == ClassOther {
		return true
	}
	for _, d := range sentClasses {
		if c == d {
			return true
		}
	}
	return false
}
