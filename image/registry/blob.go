package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
)

// OpenBlob streams the blob desc from byte offset on. The stream survives
// broken connections: when the body fails mid-way (or ends short of
// desc.Size), the blob is requested again with a Range header from the
// first byte not yet delivered, after a backoff; a server that ignores
// Range (200 instead of 206) is read from the start and the bytes already
// delivered are skipped. The caller sees one uninterrupted stream and
// still verifies the digest (the content store's Writer does).
//
// A descriptor with URLs (foreign, non-distributable layers) is fetched
// from those URLs, in order, as Docker does; the registry is not asked.
// When none answers, the error lists them.
func (r *Repository) OpenBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: %w: %v", desc.Digest, errdefs.ErrInvalidArgument, err)
	}
	if offset < 0 || desc.Size > 0 && offset > desc.Size {
		return nil, fmt.Errorf("blob %s: offset %d outside [0, %d]: %w", desc.Digest, offset, desc.Size, errdefs.ErrInvalidArgument)
	}
	br := &blobReader{ctx: ctx, r: r, desc: desc, off: offset}
	if len(desc.URLs) > 0 {
		br.client = &http.Client{Transport: r.c.base}
	} else {
		br.client = r.client
		br.url = r.base + "/blobs/" + desc.Digest.String()
	}
	if desc.Size > 0 && offset == desc.Size {
		return br, nil // nothing left to read
	}
	if err := br.open(); err != nil {
		return nil, err
	}
	return br, nil
}

type blobReader struct {
	ctx    context.Context
	r      *Repository
	client *http.Client
	desc   ocispec.Descriptor
	url    string // the source in use; "" until a foreign URL answered
	off    int64  // absolute offset of the next byte to deliver
	body   io.ReadCloser
	fails  int // consecutive failures without progress
	// Resumes counts the reconnections made after a broken body.
	resumes int
}

func (b *blobReader) what() string { return "blob " + b.desc.Digest.String() }

// open requests the blob from b.off.
func (b *blobReader) open() error {
	if b.url == "" { // foreign layer: the first URL that answers
		var errs []string
		for _, u := range b.desc.URLs {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				errs = append(errs, fmt.Sprintf("%s: not an http(s) URL", u))
				continue
			}
			b.url = u
			err := b.request()
			if err == nil {
				return nil
			}
			b.url = ""
			errs = append(errs, err.Error())
		}
		return fmt.Errorf("%s (foreign layer): none of its URLs answered: %s: %w",
			b.what(), strings.Join(errs, "; "), errdefs.ErrUnavailable)
	}
	return b.request()
}

func (b *blobReader) request() error {
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, b.url, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", b.what(), err)
	}
	if b.off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(b.off, 10)+"-")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return classify(b.what(), err)
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && b.off > 0:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start > b.off {
			resp.Body.Close()
			return fmt.Errorf("%s: bad Content-Range %q for offset %d: %w", b.what(), resp.Header.Get("Content-Range"), b.off, errdefs.ErrUnavailable)
		}
		if start < b.off { // overlapping range: skip what we have
			if _, err := io.CopyN(io.Discard, resp.Body, b.off-start); err != nil {
				resp.Body.Close()
				return classify(b.what(), err)
			}
		}
	case resp.StatusCode == http.StatusOK:
		// No Range support (or no Range asked): restart, skipping what
		// was already delivered.
		if b.off > 0 {
			if _, err := io.CopyN(io.Discard, resp.Body, b.off); err != nil {
				resp.Body.Close()
				return classify(b.what(), err)
			}
		}
	default:
		defer resp.Body.Close()
		return checkStatus(b.what(), resp, http.StatusOK)
	}
	b.body = resp.Body
	return nil
}

// contentRangeStart parses "bytes START-END/TOTAL".
func contentRangeStart(h string) (int64, bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}

func (b *blobReader) Read(p []byte) (int, error) {
	for {
		if b.desc.Size > 0 && b.off >= b.desc.Size {
			return 0, io.EOF
		}
		if b.body == nil {
			if err := b.open(); err != nil {
				if !b.retry(err) {
					return 0, err
				}
				continue
			}
		}
		if b.desc.Size > 0 && int64(len(p)) > b.desc.Size-b.off {
			p = p[:b.desc.Size-b.off]
		}
		n, err := b.body.Read(p)
		b.off += int64(n)
		if n > 0 {
			b.fails = 0
		}
		switch {
		case err == nil:
			return n, nil
		case err == io.EOF && (b.desc.Size <= 0 || b.off == b.desc.Size):
			if n > 0 {
				return n, nil
			}
			return 0, io.EOF
		case err == io.EOF:
			err = fmt.Errorf("body ended at byte %d of %d: %w", b.off, b.desc.Size, io.ErrUnexpectedEOF)
		}
		b.body.Close()
		b.body = nil
		if !Temporary(err) {
			return n, classify(b.what(), err)
		}
		if n > 0 { // deliver what we have; reconnect on the next Read
			b.resumes++
			return n, nil
		}
		b.resumes++
		if !b.retry(classify(b.what(), err)) {
			return 0, classify(b.what(), err)
		}
	}
}

// retry waits before the next attempt, or reports false when err is final
// or the attempts are used up.
func (b *blobReader) retry(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || b.ctx.Err() != nil {
		return false
	}
	if !errdefs.IsUnavailable(err) {
		return false
	}
	if b.fails >= b.r.c.opts.Retries {
		return false
	}
	d := Backoff(b.r.c.opts.Backoff, b.fails)
	b.fails++
	return sleep(b.ctx, d) == nil
}

func (b *blobReader) Close() error {
	if b.body != nil {
		err := b.body.Close()
		b.body = nil
		return err
	}
	return nil
}

// Resumes reports how many times a blob stream from OpenBlob reconnected
// after a broken body (0 for other readers).
func Resumes(r io.Reader) int {
	if b, ok := r.(*blobReader); ok {
		return b.resumes
	}
	return 0
}
