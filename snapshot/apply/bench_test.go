package apply

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/image/compression"
)

// genLayer makes a layer shaped like a distribution's /usr: many small
// files in a few hundred directories, some symlinks and hardlinks, and a
// few large files. It returns the tar and its entry count.
func genLayer(b *testing.B) ([]byte, int) {
	rng := rand.New(rand.NewPCG(3, 4))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	n := 0
	put := func(h *tar.Header, body []byte) {
		h.ModTime = t0
		if err := tw.WriteHeader(h); err != nil {
			b.Fatal(err)
		}
		tw.Write(body)
		n++
	}
	blob := make([]byte, 4<<20)
	for i := range blob {
		blob[i] = byte(rng.Uint32() >> 24 & 0x3f) // compressible, not trivially
	}
	for d := range 300 {
		dn := fmt.Sprintf("usr/share/pkg%03d", d)
		put(&tar.Header{Typeflag: tar.TypeDir, Name: dn + "/", Mode: 0o755}, nil)
		for f := range 40 {
			size := rng.IntN(8 << 10)
			off := rng.IntN(len(blob) - size)
			put(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("%s/f%02d", dn, f), Mode: 0o644, Size: int64(size)}, blob[off:off+size])
		}
		put(&tar.Header{Typeflag: tar.TypeSymlink, Name: dn + "/link", Linkname: "f00"}, nil)
		put(&tar.Header{Typeflag: tar.TypeLink, Name: dn + "/hard", Linkname: dn + "/f01"}, nil)
	}
	for i := range 10 {
		put(&tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("usr/lib/big%d.so", i), Mode: 0o755, Size: 2 << 20}, blob[:2<<20])
	}
	tw.Close()
	return buf.Bytes(), n
}

// BenchmarkApply applies a generated layer (about 12,900 entries, 70 MB)
// into an empty directory. entries/s and MB/s (of tar) are reported.
func BenchmarkApply(b *testing.B) {
	tb, n := genLayer(b)
	benchApply(b, n, int64(len(tb)), func() io.Reader { return bytes.NewReader(tb) }, Options{})
}

// BenchmarkApplyOverlay is BenchmarkApply in overlay mode.
func BenchmarkApplyOverlay(b *testing.B) {
	tb, n := genLayer(b)
	benchApply(b, n, int64(len(tb)), func() io.Reader { return bytes.NewReader(tb) }, Options{Overlay: true})
}

// BenchmarkApplyGzip is the pull path without the network: gunzip and
// apply in one stream (MB/s of uncompressed tar).
func BenchmarkApplyGzip(b *testing.B) {
	tb, n := genLayer(b)
	var gz bytes.Buffer
	w, _ := compression.Compress(&gz, compression.Gzip)
	w.Write(tb)
	w.Close()
	benchApply(b, n, int64(len(tb)), func() io.Reader {
		rc, _, err := compression.DecompressStream(bytes.NewReader(gz.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		return rc
	}, Options{})
}

func benchApply(b *testing.B, entries int, size int64, open func() io.Reader, opts Options) {
	base := b.TempDir()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root := filepath.Join(base, fmt.Sprint(i))
		if err := os.Mkdir(root, 0o755); err != nil {
			b.Fatal(err)
		}
		r := open()
		b.StartTimer()
		if _, err := Apply(context.Background(), root, r, opts); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(root)
		b.StartTimer()
	}
	b.ReportMetric(float64(entries)*float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}
