package stream

import (
	"bytes"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
)

func TestFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	m := NewMultiplexer(&buf)
	out, errw := m.Writer(Stdout), m.Writer(Stderr)
	big := strings.Repeat("x", maxFrame*2+5)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); out.Write([]byte("out\n")) }()
		go func() { defer wg.Done(); errw.Write([]byte("err\n")) }()
	}
	wg.Wait()
	if n, err := out.Write([]byte(big)); err != nil || n != len(big) {
		t.Fatalf("big write: %d %v", n, err)
	}
	// Header layout: stream byte, three zero bytes, big-endian length.
	b := buf.Bytes()
	if b[1] != 0 || b[2] != 0 || b[3] != 0 || binary.BigEndian.Uint32(b[4:8]) != 4 {
		t.Fatalf("first header % x", b[:8])
	}
	var stdout, stderr bytes.Buffer
	if err := Demux(&stdout, &stderr, &buf); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(stdout.String(), "out\n"); got != 8 || !strings.HasSuffix(stdout.String(), big) {
		t.Errorf("stdout: %d lines, %d bytes", got, stdout.Len())
	}
	if stderr.String() != strings.Repeat("err\n", 8) {
		t.Errorf("stderr %q", stderr.String())
	}
}
