package registry

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// maxBackoff caps one retry delay.
const maxBackoff = 5 * time.Second

// retryTransport retries a request that failed with a dropped connection
// or was answered 5xx or 429, with exponential backoff (honouring a
// Retry-After of at most maxBackoff). Only requests that can be replayed
// (no body, or GetBody) are retried. It sits below the authenticating
// transport, so pings and token requests are retried too.
type retryTransport struct {
	inner   http.RoundTripper
	retries int
	backoff time.Duration
	ua      string
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.ua != "" && req.Header.Get("User-Agent") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("User-Agent", t.ua)
	}
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	for attempt := 0; ; attempt++ {
		r := req
		if attempt > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r = req.Clone(req.Context())
			r.Body = body
		}
		resp, err := t.inner.RoundTrip(r)
		if attempt >= t.retries || !replayable {
			return resp, err
		}
		var wait time.Duration
		switch {
		case err != nil:
			if !Temporary(err) {
				return nil, err
			}
		case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented:
			if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
				wait = min(time.Duration(s)*time.Second, maxBackoff)
			}
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		default:
			return resp, nil
		}
		if wait == 0 {
			wait = Backoff(t.backoff, attempt)
		}
		if err := sleep(req.Context(), wait); err != nil {
			return nil, err
		}
	}
}

// Backoff is the delay before retry number attempt (0-based): first,
// doubled each time, capped at 5 s.
func Backoff(first time.Duration, attempt int) time.Duration {
	d := first << min(attempt, 16)
	if d <= 0 || d > maxBackoff {
		d = maxBackoff
	}
	return d
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Temporary reports whether err is a network failure worth retrying: a
// dropped or reset connection, a refused one, a timeout. Context
// cancellation, TLS and certificate errors are not.
func Temporary(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var rh tls.RecordHeaderError
	var cv *tls.CertificateVerificationError
	if errors.As(err, &rh) || errors.As(err, &cv) {
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}
