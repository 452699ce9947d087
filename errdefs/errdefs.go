// Package errdefs owns Berth's error categories.
//
// Every package wraps its errors in one of these sentinels with %w, naming
// what failed and why:
//
//	fmt.Errorf("blob %s: %w", dgst, errdefs.ErrNotFound)
//
// Callers test the category with errors.Is or the Is* helpers, never by
// matching message text. The categories are mapped to protocol codes (HTTP
// status, later gRPC) in exactly one place, in api/; nothing else here knows
// about protocols.
package errdefs

import (
	"context"
	"errors"
)

// The categories. Each error returned across a package boundary should wrap
// at most one of them.
var (
	// ErrNotFound: the object asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the object being created exists already. Content
	// stores return it for a blob that is already present; callers that only
	// want the blob to exist treat it as success.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalidArgument: the input is malformed; retrying it unchanged
	// cannot succeed.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrUnavailable: the resource is temporarily unavailable (locked, busy,
	// unreachable); retrying later may succeed.
	ErrUnavailable = errors.New("unavailable")
	// ErrConflict: the operation conflicts with the current state of an
	// object (e.g. removing an image that a container uses).
	ErrConflict = errors.New("conflict")
	// ErrFailedPrecondition: a check the operation depends on failed (e.g. a
	// blob's size or digest does not match what was expected).
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrNotImplemented: the operation is not supported (yet).
	ErrNotImplemented = errors.New("not implemented")
	// ErrPermissionDenied: the caller may not perform the operation.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrUnauthenticated: credentials are missing or rejected.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrNotModified: there was nothing to do (starting a running
	// container, stopping a stopped one); dockerd answers 304. It has the
	// NotModified method the API server looks for.
	ErrNotModified error = notModified{}
)

type notModified struct{}

func (notModified) Error() string { return "not modified" }
func (notModified) NotModified()  {}

// IsNotModified reports whether err is in the ErrNotModified category.
func IsNotModified(err error) bool { return errors.Is(err, ErrNotModified) }

// IsNotFound reports whether err is in the ErrNotFound category.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err is in the ErrAlreadyExists category.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsInvalidArgument reports whether err is in the ErrInvalidArgument category.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// IsUnavailable reports whether err is in the ErrUnavailable category.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// IsConflict reports whether err is in the ErrConflict category.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsFailedPrecondition reports whether err is in the ErrFailedPrecondition category.
func IsFailedPrecondition(err error) bool { return errors.Is(err, ErrFailedPrecondition) }

// IsNotImplemented reports whether err is in the ErrNotImplemented category.
func IsNotImplemented(err error) bool { return errors.Is(err, ErrNotImplemented) }

// IsPermissionDenied reports whether err is in the ErrPermissionDenied category.
func IsPermissionDenied(err error) bool { return errors.Is(err, ErrPermissionDenied) }

// IsUnauthenticated reports whether err is in the ErrUnauthenticated category.
func IsUnauthenticated(err error) bool { return errors.Is(err, ErrUnauthenticated) }

// IsCanceled reports whether err is a context cancellation.
func IsCanceled(err error) bool { return errors.Is(err, context.Canceled) }

// IsDeadlineExceeded reports whether err is a context deadline.
func IsDeadlineExceeded(err error) bool { return errors.Is(err, context.DeadlineExceeded) }
