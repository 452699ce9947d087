package cli

import (
	"bytes"
	"compress/gzip"
	"io"
	"strings"
	"testing"
)

// TestGzipped: --compress sends the context gzipped, whole.
func TestGzipped(t *testing.T) {
	in := strings.Repeat("build context ", 10000)
	b, err := io.ReadAll(gzipped(strings.NewReader(in)))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) >= len(in) || !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Fatalf("not gzip: %d bytes from %d", len(b), len(in))
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := io.ReadAll(zr); err != nil || string(out) != in {
		t.Fatalf("round trip: %v, %d bytes", err, len(out))
	}
}
