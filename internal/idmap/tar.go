package idmap

import (
	"archive/tar"
	"crypto/sha256"
	"errors"
	"io"

	"github.com/opencontainers/go-digest"
)

// ShiftTar copies the tar stream r to w with every entry's owner passed
// through owner (a remapped container's host ids back to the image's),
// and returns the digest and size of what it wrote: a layer's diff id.
func ShiftTar(w io.Writer, r io.Reader, owner func(uid, gid int) (int, int)) (digest.Digest, int64, error) {
	h := sha256.New()
	cw := &counter{w: io.MultiWriter(w, h)}
	tr := tar.NewReader(r)
	tw := tar.NewWriter(cw)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", 0, err
		}
		hdr.Uid, hdr.Gid = owner(hdr.Uid, hdr.Gid)
		if err := tw.WriteHeader(hdr); err != nil {
			return "", 0, err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return "", 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return "", 0, err
	}
	return digest.NewDigest(digest.SHA256, h), cw.n, nil
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
