package rawio

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestReadWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	big := bytes.Repeat([]byte("0123456789"), 1000) // beyond the first buffer
	if err := os.WriteFile(p, []byte("old contents that are longer"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, big); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(p)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read back %d bytes (%v), want %d", len(got), err, len(big))
	}
	// procfs files report size 0: read until EOF.
	if b, err := ReadFile("/proc/self/status"); err != nil || !bytes.Contains(b, []byte("Pid:")) {
		t.Fatalf("read /proc/self/status: %q, %v", b, err)
	}
	_, err = ReadFile(filepath.Join(dir, "missing"))
	var pe *os.PathError
	if !errors.Is(err, os.ErrNotExist) || !errors.As(err, &pe) || pe.Op != "open" {
		t.Fatalf("missing file: %v, want an open *PathError matching ErrNotExist", err)
	}
	if err := WriteFile(filepath.Join(dir, "missing"), []byte("x")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("WriteFile created a file: %v", err)
	}
}
