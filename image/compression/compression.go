// Package compression owns the codecs of layer streams: it recognises gzip,
// zstd and uncompressed (tar) streams by their magic bytes, decompresses them
// with github.com/klauspost/compress (several times faster than the standard
// library's gzip), compresses for push and save, and guards callers against
// decompression bombs with a byte cap.
package compression

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Kind is the compression of a stream.
type Kind int

const (
	// Uncompressed is a plain stream (for layers: a tar archive).
	Uncompressed Kind = iota
	// Gzip is RFC 1952 gzip (media types ending in "+gzip" or ".gzip").
	Gzip
	// Zstd is RFC 8878 Zstandard (media types ending in "+zstd").
	Zstd
)

// String returns the name used in OCI media type suffixes.
func (k Kind) String() string {
	switch k {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("compression.Kind(%d)", int(k))
}

var (
	gzipMagic = []byte{0x1f, 0x8b, 0x08}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// Detect reports the compression of a stream from its first bytes (at least
// 4 are needed to recognise zstd). Anything unrecognised is Uncompressed.
func Detect(head []byte) Kind {
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip
	case bytes.HasPrefix(head, zstdMagic):
		return Zstd
	}
	return Uncompressed
}

// readBufferSize is the read-ahead used to sniff the magic bytes; it also
// gives the decoders a byte reader so they do not wrap r again.
const readBufferSize = 64 << 10

// DecompressStream sniffs the compression of r and returns a reader of the
// decompressed bytes and the Kind it found. Closing the returned reader
// releases the decoder; it does not close r. A corrupt stream surfaces as an
// error from Read (a truncated gzip or zstd stream is io.ErrUnexpectedEOF,
// never a silent short read).
//
// Wrap the result with NewLimitReader to bound how many bytes a hostile
// stream may expand to.
func DecompressStream(r io.Reader) (io.ReadCloser, Kind, error) {
	br := bufio.NewReaderSize(r, readBufferSize)
	head, err := br.Peek(len(zstdMagic))
	if err != nil && err != io.EOF {
		return nil, Uncompressed, fmt.Errorf("sniff compression: %w", err)
	}
	switch kind := Detect(head); kind {
	case Gzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, kind, fmt.Errorf("open gzip stream: %w", err)
		}
		return zr, kind, nil
	case Zstd:
		// One decoder goroutine: layers are decompressed in parallel with
		// each other, so per-stream concurrency only adds overhead.
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, kind, fmt.Errorf("open zstd stream: %w", err)
		}
		return zr.IOReadCloser(), kind, nil
	default:
		return io.NopCloser(br), Uncompressed, nil
	}
}
