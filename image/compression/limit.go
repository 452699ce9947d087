package compression

import (
	"fmt"
	"io"

	"github.com/berth-dev/berth/errdefs"
)

// ErrTooLarge is wrapped by the error a LimitReader returns once the stream
// yields more bytes than its cap. It is in the errdefs.ErrInvalidArgument
// category: retrying the same stream cannot succeed.
var ErrTooLarge = fmt.Errorf("decompressed stream exceeds the size limit: %w", errdefs.ErrInvalidArgument)

// LimitReader passes through at most N bytes of R and fails with an error
// wrapping ErrTooLarge if R has more: unlike io.LimitReader, a stream that is
// too long is an error, never a silent truncation. It is the guard against
// decompression bombs.
type LimitReader struct {
	R     io.Reader // underlying reader
	N     int64     // bytes still allowed
	Limit int64     // the cap, for the error message
}

// NewLimitReader returns a LimitReader allowing max bytes of r. If r is an
// io.Closer, Close on the result closes it.
func NewLimitReader(r io.Reader, max int64) io.ReadCloser {
	return &LimitReader{R: r, N: max, Limit: max}
}

// Read implements io.Reader.
func (l *LimitReader) Read(p []byte) (int, error) {
	if l.N <= 0 {
		// The cap is reached: any further byte is one too many.
		var one [1]byte
		for range 100 {
			n, err := l.R.Read(one[:])
			if n > 0 {
				return 0, fmt.Errorf("more than %d bytes: %w", l.Limit, ErrTooLarge)
			}
			if err != nil {
				return 0, err
			}
		}
		return 0, io.ErrNoProgress
	}
	if int64(len(p)) > l.N {
		p = p[:l.N]
	}
	n, err := l.R.Read(p)
	l.N -= int64(n)
	return n, err
}

// Close closes the underlying reader if it is an io.Closer.
func (l *LimitReader) Close() error {
	if c, ok := l.R.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
