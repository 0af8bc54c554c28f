package store

import "time"

// Managed rollouts in waves, groups and tags (schema 10).
//
// Invariants every implementation keeps:
//   - A managed rollout's Seq is assigned by AddManagedRollout, one more
//     than the highest Seq of its product's rollouts: it orders a product's
//     rollouts by creation (see rollout.Owner).
//   - Plan and State are JSON documents the store keeps as given (package
//     project writes rollout.Plan and rollout.State); only State and
//     Updated ever change.
//   - A rollout names a release of its product that exists.
//   - Device labels (groups and tags) name a device that exists;
//     DeleteDevice removes them with the device.

// Label kinds.
const (
	LabelGroup = "group"
	LabelTag   = "tag"
)

// ManagedRollout is a rollout in waves of a managed product.
type ManagedRollout struct {
	// ID is random, assigned by package project; unique.
	ID      string
	Product string
	// Seq orders a product's rollouts by creation; AddManagedRollout
	// assigns it.
	Seq     int64
	Version string
	// Selection is the selection filter as the operator wrote it
	// (rollout.ParseSelector syntax); "" selects every device.
	Selection string
	// Plan and State are JSON of rollout.Plan and rollout.State.
	Plan, State []byte
	Created     time.Time
	Updated     time.Time
}

// DeviceLabel puts a device in a static group or gives it a tag.
type DeviceLabel struct {
	Device string
	// Kind is LabelGroup or LabelTag.
	Kind  string
	Name  string
	Added time.Time
}

// LabelFilter selects device labels. Zero fields select everything.
type LabelFilter struct {
	// Product selects the labels of the product's devices.
	Product, Device, Kind, Name string
}

// OutcomeFilter selects the latest event of each device of a product for
// one version (see Reader.LatestDeviceEvents).
type OutcomeFilter struct {
	Product, Version string
	// Since, when not zero, ignores events before it.
	Since time.Time
}
