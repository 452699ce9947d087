package images

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
)

// layerWriter streams one layer: tar entries are hashed (diff id),
// optionally copied uncompressed to a raw file (for a docker-archive), and
// compressed into a blob of the layout. Nothing is held in memory beyond
// the buffers.
type layerWriter struct {
	*tar.Writer
	comp    Compression
	blob    *blobWriter
	blobBuf *bufio.Writer
	zw      io.WriteCloser // compressor, nil when uncompressed
	diff    hash.Hash
	tarN    int64
	raw     *os.File
	rawBuf  *bufio.Writer
}

// newLayerWriter starts a layer blob in layout; rawPath, when not empty,
// receives the uncompressed tar as well.
func newLayerWriter(layout string, comp Compression, rawPath string) (*layerWriter, error) {
	blob, err := newBlobWriter(layout)
	if err != nil {
		return nil, err
	}
	lw := &layerWriter{comp: comp, blob: blob, blobBuf: bufio.NewWriterSize(blob, 1<<20), diff: sha256.New()}
	switch comp {
	case Gzip:
		lw.zw, err = gzip.NewWriterLevel(lw.blobBuf, gzip.DefaultCompression)
	case Zstd:
		lw.zw, err = zstd.NewWriter(lw.blobBuf, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	case Uncompressed:
	default:
		err = fmt.Errorf("unknown compression %q", comp)
	}
	if err != nil {
		blob.abort()
		return nil, err
	}
	if rawPath != "" {
		if lw.raw, err = os.Create(rawPath); err != nil {
			blob.abort()
			return nil, err
		}
		lw.rawBuf = bufio.NewWriterSize(lw.raw, 1<<20)
	}
	lw.Writer = tar.NewWriter(lw)
	return lw, nil
}

// Write receives the tar stream.
func (lw *layerWriter) Write(p []byte) (int, error) {
	lw.diff.Write(p)
	lw.tarN += int64(len(p))
	if lw.rawBuf != nil {
		if _, err := lw.rawBuf.Write(p); err != nil {
			return 0, err
		}
	}
	if lw.zw != nil {
		return lw.zw.Write(p)
	}
	return lw.blobBuf.Write(p)
}

// finish closes the tar stream and commits the blob.
func (lw *layerWriter) finish() (Layer, error) {
	err := lw.Writer.Close()
	if err == nil && lw.zw != nil {
		err = lw.zw.Close()
	}
	if err == nil {
		err = lw.blobBuf.Flush()
	}
	if lw.raw != nil {
		if err == nil {
			err = lw.rawBuf.Flush()
		}
		if cerr := lw.raw.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		lw.blob.abort()
		return Layer{}, err
	}
	d, err := lw.blob.commit(lw.comp.MediaType())
	if err != nil {
		return Layer{}, err
	}
	return Layer{
		Descriptor:  d,
		DiffID:      digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(lw.diff.Sum(nil))),
		TarSize:     lw.tarN,
		Compression: lw.comp,
	}, nil
}

// abort drops the layer.
func (lw *layerWriter) abort() {
	lw.blob.abort()
	if lw.raw != nil {
		lw.raw.Close()
		os.Remove(lw.raw.Name())
	}
}
