package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/compression"
	"github.com/berth-dev/berth/snapshot/apply"
)

// DefaultMaxContextSize bounds the uncompressed size of a build context.
const DefaultMaxContextSize = 2 << 30

// errContextTooBig is returned once the context passed the limit.
var errContextTooBig = errors.New("build context too big")

// limitReader fails once more than n bytes were read.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		return n, errContextTooBig
	}
	return n, err
}

// extractContext unpacks the context tar r (plain or compressed, as the
// API allows) into dir. Its uncompressed size is capped by max.
func extractContext(ctx context.Context, dir string, r io.Reader, max int64) error {
	dr, _, err := compression.DecompressStream(r)
	if err != nil {
		return fmt.Errorf("read build context: %w", err)
	}
	defer dr.Close()
	lr := &limitReader{r: dr, n: max}
	if _, err := apply.Apply(ctx, dir, lr, apply.Options{MaxTotalSize: max, NoSync: true}); err != nil {
		if errors.Is(err, errContextTooBig) || lr.n < 0 || strings.Contains(err.Error(), "exceeds") {
			return fmt.Errorf("build context is larger than the limit of %d bytes: %w", max, errdefs.ErrInvalidArgument)
		}
		return fmt.Errorf("unpack build context: %w: %w", err, errdefs.ErrInvalidArgument)
	}
	// Drain what follows the tar's end (padding), so the client does not
	// see its upload cut short.
	_, _ = io.Copy(io.Discard, lr)
	return nil
}

// readDockerfile reads the Dockerfile name (relative to the context, as
// the API's dockerfile parameter) from the context dir; symlinks resolve
// inside the context.
func readDockerfile(dir, name string) ([]byte, error) {
	if name == "" {
		name = "Dockerfile"
	}
	p, err := securejoin.SecureJoin(dir, path.Clean("/"+name))
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) && name == "Dockerfile" {
		// dockerd also accepts the lower-case name.
		if p2, err2 := securejoin.SecureJoin(dir, "dockerfile"); err2 == nil {
			if b2, err2 := os.ReadFile(p2); err2 == nil {
				return b2, nil
			}
		}
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("Cannot locate specified Dockerfile: %s: %w", name, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("read Dockerfile %s: %w", name, err)
	}
	return b, nil
}
