package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/api/filters"
	"github.com/berth-dev/berth/errdefs"
)

// invalid wraps a message as an invalid-argument error.
func invalid(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, errdefs.ErrInvalidArgument)...)
}

// boolValue is dockerd's reading of a boolean query parameter: absent,
// "", "0", "no", "false" and "none" are false, anything else true.
func boolValue(r *http.Request, key string) bool {
	switch strings.ToLower(strings.TrimSpace(r.FormValue(key))) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

// boolValueOr is boolValue with a default for an absent parameter.
func boolValueOr(r *http.Request, key string, def bool) bool {
	if _, ok := r.Form[key]; !ok {
		return def
	}
	return boolValue(r, key)
}

// intValue parses an integer query parameter; def when absent or "".
func intValue(r *http.Request, key string, def int64) (int64, error) {
	v := r.FormValue(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, invalid("invalid value for %s: %q", key, v)
	}
	return n, nil
}

// filtersOf parses the request's "filters" parameter.
func filtersOf(r *http.Request) (filters.Args, error) {
	return filters.Parse(r.FormValue("filters"))
}

// readJSON decodes the request body into v as dockerd does: the
// Content-Type must be JSON when given, an empty body leaves v as it is,
// and malformed or trailing content is an invalid argument. strict also
// refuses unknown fields. Bodies are bounded by maxJSONBody.
func readJSON(w http.ResponseWriter, r *http.Request, v any, strict bool) (empty bool, err error) {
	if err := checkJSON(r); err != nil {
		return false, err
	}
	if r.Body == nil || r.ContentLength == 0 {
		return true, nil
	}
	body := http.MaxBytesReader(w, r.Body, maxJSONBody)
	dec := json.NewDecoder(body)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return false, fmt.Errorf("request body larger than %d bytes: %w", maxJSONBody, err)
		case errors.Is(err, io.EOF):
			if r.ContentLength < 0 {
				return true, nil
			}
			return false, invalid("invalid JSON: got EOF while reading request body")
		}
		return false, invalid("invalid JSON: %v", err)
	}
	if dec.More() {
		return false, invalid("unexpected content after JSON")
	}
	return false, nil
}

// checkJSON refuses a body declared as something other than JSON.
func checkJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && mt == "application/json" {
		return nil
	}
	return invalid("unsupported Content-Type header (%s): must be 'application/json'", ct)
}

// parseTimestamp reads the "since"/"until" values clients send: Unix
// seconds with optional fraction ("1700000000.123456789"), as the docker
// CLI converts every time it is given to, or RFC 3339. "" is the zero time.
func parseTimestamp(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	sec, frac, hasFrac := strings.Cut(v, ".")
	if s, err := strconv.ParseInt(sec, 10, 64); err == nil {
		var ns int64
		if hasFrac {
			if len(frac) > 9 || frac == "" {
				return time.Time{}, invalid("invalid timestamp %q", v)
			}
			f, err := strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
			if err != nil {
				return time.Time{}, invalid("invalid timestamp %q", v)
			}
			ns = f
		}
		return time.Unix(s, ns), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	return time.Time{}, invalid("invalid timestamp %q", v)
}

// flushWriter flushes every write through to the client: streams must
// not sit in a buffer.
type flushWriter struct {
	w http.ResponseWriter
	f http.Flusher
}

func newFlushWriter(w http.ResponseWriter) *flushWriter {
	f, _ := w.(http.Flusher)
	return &flushWriter{w: w, f: f}
}

func (fw *flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	if fw.f != nil {
		fw.f.Flush()
	}
	return n, err
}
