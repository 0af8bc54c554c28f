// Package transfer moves the bytes of a release into the device: the
// checkpoint journal in which downloads save their progress.
package transfer
