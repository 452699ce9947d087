package compression

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// layerLike returns n bytes that compress roughly like a real layer (about
// 3:1 with gzip): text-like runs of words mixed with incompressible runs.
func layerLike(n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("usr lib bin share doc libc.so.6 ELF GLIBC_2.34 " +
		"main init config error return struct package import func const var " +
		"debian bookworm amd64 x86_64-linux-gnu copyright changelog.gz locale")
	var b bytes.Buffer
	b.Grow(n)
	for b.Len() < n {
		if rng.IntN(4) == 0 {
			for range 64 + rng.IntN(512) {
				b.WriteByte(byte(rng.Uint32()))
			}
			continue
		}
		for range 16 + rng.IntN(256) {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(" \n/\x00"[rng.IntN(4)])
		}
	}
	return b.Bytes()[:n]
}

func compressed(t testing.TB, data []byte, kind Kind) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := Compress(&buf, kind)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	data := layerLike(3 << 20)
	for _, kind := range []Kind{Uncompressed, Gzip, Zstd} {
		t.Run(kind.String(), func(t *testing.T) {
			c := compressed(t, data, kind)
			if kind != Uncompressed && len(c) >= len(data) {
				t.Errorf("%v did not compress: %d >= %d", kind, len(c), len(data))
			}
			rc, got, err := DecompressStream(bytes.NewReader(c))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if got != kind {
				t.Fatalf("detected %v, want %v", got, kind)
			}
			out, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, data) {
				t.Fatal("round trip changed the data")
			}
		})
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		head []byte
		want Kind
	}{
		{nil, Uncompressed},
		{[]byte{0x1f}, Uncompressed},
		{[]byte{0x1f, 0x8b, 0x08, 0}, Gzip},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd}, Zstd},
		{[]byte{0x28, 0xb5, 0x2f}, Uncompressed},
		{[]byte("bin/\x00\x00\x00"), Uncompressed},
	} {
		if got := Detect(tc.head); got != tc.want {
			t.Errorf("Detect(%q) = %v, want %v", tc.head, got, tc.want)
		}
	}
}

func TestEmptyAndShortStreams(t *testing.T) {
	for _, in := range [][]byte{nil, {0x1f}, []byte("ab")} {
		rc, kind, err := DecompressStream(bytes.NewReader(in))
		if err != nil || kind != Uncompressed {
			t.Fatalf("%q: kind %v err %v", in, kind, err)
		}
		out, _ := io.ReadAll(rc)
		if !bytes.Equal(out, in) {
			t.Fatalf("%q: read back %q", in, out)
		}
	}
}

func TestTruncatedStreamsFail(t *testing.T) {
	data := layerLike(1 << 20)
	for _, kind := range []Kind{Gzip, Zstd} {
		c := compressed(t, data, kind)
		rc, _, err := DecompressStream(bytes.NewReader(c[:len(c)/2]))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(rc); err == nil {
			t.Errorf("%v: truncated stream read without error", kind)
		}
		rc.Close()
	}
}

func TestMultistreamGzip(t *testing.T) {
	// Concatenated gzip members are one stream (RFC 1952, and pigz/"cat a.gz
	// b.gz" layers rely on it).
	c := append(compressed(t, []byte("hello "), Gzip), compressed(t, []byte("world"), Gzip)...)
	rc, _, err := DecompressStream(bytes.NewReader(c))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(rc)
	if err != nil || string(out) != "hello world" {
		t.Fatalf("got %q, %v", out, err)
	}
}

func TestLimitReader(t *testing.T) {
	data := bytes.Repeat([]byte{'x'}, 1000)
	// Exactly at the cap: fine.
	out, err := io.ReadAll(NewLimitReader(bytes.NewReader(data), 1000))
	if err != nil || len(out) != 1000 {
		t.Fatalf("at the cap: %d bytes, %v", len(out), err)
	}
	// One byte over: an error, not a truncation.
	_, err = io.ReadAll(NewLimitReader(bytes.NewReader(data), 999))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over the cap: %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "999") {
		t.Errorf("error does not name the cap: %v", err)
	}
}

func TestDecompressionBomb(t *testing.T) {
	// 256 MiB of zeros compress to a few hundred KiB; the cap stops it after
	// 1 MiB without expanding the rest.
	for _, kind := range []Kind{Gzip, Zstd} {
		var buf bytes.Buffer
		w, _ := Compress(&buf, kind)
		zeros := make([]byte, 1<<20)
		for range 256 {
			w.Write(zeros)
		}
		w.Close()
		rc, _, err := DecompressStream(&buf)
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, NewLimitReader(rc, 1<<20))
		rc.Close()
		if !errors.Is(err, ErrTooLarge) || n != 1<<20 {
			t.Errorf("%v bomb: copied %d, %v", kind, n, err)
		}
	}
}

// BenchmarkGunzip compares klauspost's gzip decoder with the standard
// library's on a generated 50 MB layer. Compare the MB/s of the two
// sub-benchmarks for the ratio.
func BenchmarkGunzip(b *testing.B) {
	data := layerLike(50 << 20)
	c := compressed(b, data, Gzip)
	b.Logf("50 MB layer gzips to %.1f MB", float64(len(c))/1e6)
	buf := make([]byte, 256<<10)
	b.Run("klauspost", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			rc, _, err := DecompressStream(bytes.NewReader(c))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, rc, buf); err != nil {
				b.Fatal(err)
			}
			rc.Close()
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			zr, err := gzip.NewReader(bytes.NewReader(c))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, zr, buf); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkZstdDecompress measures zstd decompression of the same layer.
func BenchmarkZstdDecompress(b *testing.B) {
	data := layerLike(50 << 20)
	c := compressed(b, data, Zstd)
	b.Logf("50 MB layer zstds to %.1f MB", float64(len(c))/1e6)
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		rc, _, err := DecompressStream(bytes.NewReader(c))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}
