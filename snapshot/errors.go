package snapshot

import "errors"

// Error categories of snapshot operations. Errors returned by a
// Snapshotter wrap one of them (test with errors.Is); the API layer maps
// them to status codes. They move to the project's shared error-category
// package when it exists.
var (
	// ErrNotFound: the snapshot (or parent) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the key or name is already in use.
	ErrAlreadyExists = errors.New("already exists")
	// ErrFailedPrecondition: the snapshot is not in a state that allows
	// the operation (committing a view, removing a parent).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrInvalidArgument: the request itself is malformed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotImplemented: the snapshot uses a feature this code does not
	// support (for instance an overlay upper dir made with metacopy).
	ErrNotImplemented = errors.New("not implemented")
)
