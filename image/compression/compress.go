package compression

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compress returns a writer that compresses what is written to it as kind
// and writes the result to w. Close flushes the compressor (it does not close
// w); the stream is incomplete until Close returns nil. Uncompressed passes
// bytes through.
//
// Gzip uses the default level (the one Docker writes, a fair ratio at a
// sensible speed); zstd uses the encoder's default level.
func Compress(w io.Writer, kind Kind) (io.WriteCloser, error) {
	switch kind {
	case Uncompressed:
		return nopWriteCloser{w}, nil
	case Gzip:
		return gzip.NewWriterLevel(w, gzip.DefaultCompression)
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
	}
	return nil, fmt.Errorf("compress: unknown %v", kind)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
