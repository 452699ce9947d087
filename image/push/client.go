package push

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/credentials"
)

// progressEvery is how many bytes pass between two Pushing events
// (Docker's progress reader uses the same).
const progressEvery = 512 << 10

// client speaks the distribution protocol's push side to one registry.
type client struct {
	t       *credentials.Transport
	http    *http.Client
	retries int
	delay   time.Duration
}

// statusError is an unexpected answer from the registry.
type statusError struct {
	what   string
	status int
	text   string // the registry's error codes and messages, or the status
}

func (e *statusError) Error() string { return e.what + ": " + e.text }

// Unwrap puts the error in Berth's categories.
func (e *statusError) Unwrap() error {
	switch {
	case e.status == http.StatusUnauthorized:
		return errdefs.ErrUnauthenticated
	case e.status == http.StatusForbidden:
		return errdefs.ErrPermissionDenied
	case e.status == http.StatusNotFound:
		return errdefs.ErrNotFound
	case e.status == http.StatusTooManyRequests || e.status >= 500:
		return errdefs.ErrUnavailable
	default:
		return errdefs.ErrFailedPrecondition
	}
}

// retryable reports whether retrying err may help: a server error, rate
// limiting, or a transport failure (not a cancelled context).
func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		// 416: a resumed chunk started where the session was not; a new
		// session fixes that.
		return se.status == http.StatusTooManyRequests || se.status >= 500 || se.status == http.StatusRequestedRangeNotSatisfiable
	}
	return err != nil && !errdefs.IsCanceled(err) && !errdefs.IsDeadlineExceeded(err) && errors.Is(err, errTransport)
}

// errTransport marks a request that failed without an answer.
var errTransport = errors.New("request failed")

// responseError reads resp's body into a statusError and closes it.
func responseError(what string, resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var doc struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	text := resp.Status
	if resp.StatusCode == http.StatusUnauthorized {
		text = "unauthorized: authentication required"
	}
	if json.Unmarshal(body, &doc) == nil && len(doc.Errors) > 0 {
		var parts []string
		for _, e := range doc.Errors {
			parts = append(parts, strings.ToLower(e.Code)+": "+e.Message)
		}
		text = strings.Join(parts, "; ")
	}
	return &statusError{what: what, status: resp.StatusCode, text: text}
}

// backoff waits before retry n (0-based): delay, 2*delay, 4*delay, ...
func (c *client) backoff(ctx context.Context, n int) error {
	d := c.delay << min(n, 6)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send sends one request; a transport failure wraps errTransport, an
// answer outside ok is a statusError (the body is then closed).
func (c *client) send(what string, req *http.Request, ok ...int) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("%s: %w: %v", what, errTransport, err)
	}
	for _, code := range ok {
		if resp.StatusCode == code {
			return resp, nil
		}
	}
	return nil, responseError(what, resp)
}

// do sends the request build makes, retrying retryable failures with
// backoff. build is called for every attempt.
func (c *client) do(ctx context.Context, what string, build func() (*http.Request, error), ok ...int) (*http.Response, error) {
	for n := 0; ; n++ {
		req, err := build()
		if err != nil {
			return nil, fmt.Errorf("%s: %v: %w", what, err, errdefs.ErrInvalidArgument)
		}
		resp, err := c.send(what, req, ok...)
		if err == nil || !retryable(err) || n >= c.retries {
			return resp, err
		}
		if err := c.backoff(ctx, n); err != nil {
			return nil, err
		}
	}
}

func (c *client) request(ctx context.Context, method, u string, body []byte) func() (*http.Request, error) {
	return func() (*http.Request, error) {
		var r io.Reader
		if body != nil {
			r = bytes.NewReader(body)
		}
		return http.NewRequestWithContext(ctx, method, u, r)
	}
}

// blobExists asks the repository for desc (HEAD).
func (c *client) blobExists(ctx context.Context, repo string, desc ocispec.Descriptor) (bool, error) {
	what := "HEAD blob " + desc.Digest.String()
	resp, err := c.do(ctx, what, c.request(ctx, http.MethodHead, c.t.URL("/v2/"+repo+"/blobs/"+desc.Digest.String()), nil), http.StatusOK)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

// manifestExists asks the repository for the manifest desc (HEAD).
func (c *client) manifestExists(ctx context.Context, repo string, desc ocispec.Descriptor) (bool, error) {
	what := "HEAD manifest " + desc.Digest.String()
	build := func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.t.URL("/v2/"+repo+"/manifests/"+desc.Digest.String()), nil)
		if err == nil {
			req.Header.Set("Accept", desc.MediaType)
		}
		return req, err
	}
	resp, err := c.do(ctx, what, build, http.StatusOK)
	if errdefs.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

// mount asks the registry to mount desc from repository from into repo.
// It reports whether it did; when the registry opened an upload session
// instead (202), its location is returned for the upload. Any refusal
// means "upload it": the caller may not read from, or from lacks the blob.
func (c *client) mount(ctx context.Context, repo, from string, desc ocispec.Descriptor) (bool, string, error) {
	q := url.Values{"mount": {desc.Digest.String()}, "from": {from}}
	u := c.t.URL("/v2/" + repo + "/blobs/uploads/?" + q.Encode())
	resp, err := c.do(ctx, "mount blob "+desc.Digest.String()+" from "+from, c.request(ctx, http.MethodPost, u, nil), http.StatusCreated, http.StatusAccepted)
	if errdefs.IsCanceled(err) || errdefs.IsDeadlineExceeded(err) {
		return false, "", err
	}
	if err != nil {
		return false, "", nil
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		return true, "", nil
	}
	loc, err := location(resp)
	if err != nil {
		return false, "", nil
	}
	return false, loc, nil
}

// cancelUpload deletes an upload session, best effort (sessions expire
// anyway).
func (c *client) cancelUpload(ctx context.Context, loc string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, loc, nil)
	if err != nil {
		return
	}
	if resp, err := c.http.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
	}
}

// location resolves a response's Location header against its request.
func location(resp *http.Response) (string, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("%s %s: no Location in the answer: %w", resp.Request.Method, resp.Request.URL.Path, errdefs.ErrFailedPrecondition)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("bad upload Location %q: %v: %w", loc, err, errdefs.ErrFailedPrecondition)
	}
	return u.String(), nil
}

// withQuery returns u with key=value added to its query.
func withQuery(u, key, value string) string {
	parsed, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := parsed.Query()
	q.Set(key, value)
	parsed.RawQuery = q.Encode()
	return parsed.String()
}

// startUpload opens an upload session and returns its location.
func (c *client) startUpload(ctx context.Context, repo string, d digest.Digest) (string, error) {
	resp, err := c.do(ctx, "start upload of "+d.String(), c.request(ctx, http.MethodPost, c.t.URL("/v2/"+repo+"/blobs/uploads/"), nil), http.StatusAccepted)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	return location(resp)
}

// upload uploads desc's bytes from ra, in session loc when given (a new
// one otherwise). A failed upload is retried in a new session; a failed
// chunk is resent from where the registry says it stopped.
func (c *client) upload(ctx context.Context, repo string, desc ocispec.Descriptor, ra io.ReaderAt, loc string, chunk int64, onProgress func(int64)) error {
	for n := 0; ; n++ {
		err := c.uploadOnce(ctx, repo, desc, ra, loc, chunk, onProgress)
		if err == nil || !retryable(err) || n >= c.retries {
			return err
		}
		loc = ""
		if err := c.backoff(ctx, n); err != nil {
			return err
		}
	}
}

func (c *client) uploadOnce(ctx context.Context, repo string, desc ocispec.Descriptor, ra io.ReaderAt, loc string, chunk int64, onProgress func(int64)) error {
	var err error
	if loc == "" {
		if loc, err = c.startUpload(ctx, repo, desc.Digest); err != nil {
			return err
		}
	}
	what := "upload blob " + desc.Digest.String()
	if desc.Size <= chunk {
		// Monolithic: the whole blob in the closing PUT.
		req, err := bodyRequest(ctx, http.MethodPut, withQuery(loc, "digest", desc.Digest.String()), ra, 0, desc.Size, onProgress)
		if err != nil {
			return err
		}
		resp, err := c.send(what, req, http.StatusCreated)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	// Chunked: PATCH each range, then a PUT without a body.
	var off int64
	failures := 0
	for off < desc.Size {
		n := min(chunk, desc.Size-off)
		req, err := bodyRequest(ctx, http.MethodPatch, loc, ra, off, n, onProgress)
		if err != nil {
			return err
		}
		req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", off, off+n-1))
		resp, err := c.send(what, req, http.StatusAccepted, http.StatusNoContent)
		if err != nil {
			if !retryable(err) || failures >= c.retries {
				return err
			}
			if berr := c.backoff(ctx, failures); berr != nil {
				return berr
			}
			failures++
			// Ask the session how much it has; if it cannot say, start over.
			got, serr := c.uploadStatus(ctx, loc)
			if serr != nil {
				return err
			}
			off = got
			continue
		}
		next, lerr := location(resp)
		resp.Body.Close()
		if lerr != nil {
			return lerr
		}
		loc = next
		off += n
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, withQuery(loc, "digest", desc.Digest.String()), nil)
	if err != nil {
		return err
	}
	resp, err := c.send(what, req, http.StatusCreated)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// uploadStatus returns how many bytes the session at loc holds (GET, the
// Range header "0-<last>").
func (c *client) uploadStatus(ctx context.Context, loc string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.send("upload status", req, http.StatusNoContent, http.StatusOK)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	r := resp.Header.Get("Range")
	if r == "" {
		return 0, nil
	}
	_, last, ok := strings.Cut(strings.TrimPrefix(r, "bytes="), "-")
	end, err := strconv.ParseInt(last, 10, 64)
	if !ok || err != nil {
		return 0, fmt.Errorf("upload status: bad Range %q: %w", r, errdefs.ErrFailedPrecondition)
	}
	if end == 0 {
		// Distribution says "0-0" for an empty session (and, ambiguously,
		// for one byte, which our chunks never leave); a wrong guess is
		// refused with 416 and the upload restarts.
		return 0, nil
	}
	return end + 1, nil
}

// putManifest stores the manifest b (described by desc) under ref, a tag
// or desc's digest.
func (c *client) putManifest(ctx context.Context, repo, ref string, desc ocispec.Descriptor, b []byte) error {
	what := "put manifest " + desc.Digest.String()
	build := func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.t.URL("/v2/"+repo+"/manifests/"+ref), bytes.NewReader(b))
		if err == nil {
			req.Header.Set("Content-Type", desc.MediaType)
		}
		return req, err
	}
	resp, err := c.do(ctx, what, build, http.StatusCreated, http.StatusOK)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != desc.Digest.String() {
		return fmt.Errorf("%s: the registry stored it as %s: %w", what, got, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// bodyRequest makes a request whose body is ra's bytes [off, off+n),
// replayable (GetBody), reporting the absolute position to onProgress
// every progressEvery bytes and at the end.
func bodyRequest(ctx context.Context, method, u string, ra io.ReaderAt, off, n int64, onProgress func(int64)) (*http.Request, error) {
	body := func() io.ReadCloser {
		return io.NopCloser(&countingReader{r: io.NewSectionReader(ra, off, n), pos: off, last: off, end: off + n, report: onProgress})
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body())
	if err != nil {
		return nil, err
	}
	req.GetBody = func() (io.ReadCloser, error) { return body(), nil }
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	return req, nil
}

// countingReader reports its position as bytes pass.
type countingReader struct {
	r             io.Reader
	pos, end      int64
	last          int64
	report        func(int64)
	reportedFinal bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.pos += int64(n)
	if c.pos-c.last >= progressEvery || (c.pos == c.end && !c.reportedFinal) {
		c.last = c.pos
		c.reportedFinal = c.pos == c.end
		c.report(c.pos)
	}
	return n, err
}
