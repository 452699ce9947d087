package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/berth-dev/berth/errdefs"
)

// notModified is how a backend says "nothing to do" (starting a running
// container, stopping a stopped one): dockerd answers 304. errdefs has no
// such category, so backends return an error with this method.
type notModified interface{ NotModified() }

// ErrNotModified is an error backends may wrap to get a 304.
var ErrNotModified error = notModifiedError{}

type notModifiedError struct{}

func (notModifiedError) Error() string { return "not modified" }
func (notModifiedError) NotModified()  {}

// categories maps errdefs' categories to HTTP statuses: the one place
// where they meet a protocol.
var categories = []struct {
	err    error
	status int
}{
	{errdefs.ErrNotFound, http.StatusNotFound},
	{errdefs.ErrInvalidArgument, http.StatusBadRequest},
	{errdefs.ErrConflict, http.StatusConflict},
	{errdefs.ErrAlreadyExists, http.StatusConflict},
	{errdefs.ErrUnauthenticated, http.StatusUnauthorized},
	{errdefs.ErrPermissionDenied, http.StatusForbidden},
	{errdefs.ErrNotImplemented, http.StatusNotImplemented},
	{errdefs.ErrUnavailable, http.StatusServiceUnavailable},
	{errdefs.ErrFailedPrecondition, http.StatusBadRequest},
}

// StatusOf is the HTTP status dockerd would answer err with.
func StatusOf(err error) int {
	var nm notModified
	if errors.As(err, &nm) {
		return http.StatusNotModified
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	for _, c := range categories {
		if errors.Is(err, c.err) {
			return c.status
		}
	}
	return http.StatusInternalServerError
}

// MessageOf is err's text for API clients: the category sentinel that
// wrapping appends (": not found") is for logs and errors.Is, not for
// users, and dockerd's messages do not have it.
func MessageOf(err error) string {
	msg := err.Error()
	for _, c := range categories {
		if errors.Is(err, c.err) {
			msg = strings.TrimSuffix(msg, ": "+c.err.Error())
		}
	}
	return msg
}

// writeError answers err as dockerd does: {"message": "..."} with the
// category's status (no body for 304).
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := StatusOf(err)
	if status == http.StatusNotModified {
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, map[string]string{"message": MessageOf(err)})
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
