package replace

import (
	"os"
	"path/filepath"
	"testing"
)

// Rename over an existing file and onto a missing one: the new content is
// in place, nothing else is left, and a directory is not swapped for a
// file.
func TestRename(t *testing.T) {
	for _, dir := range []string{t.TempDir(), "/dev/shm"} {
		d, err := os.MkdirTemp(dir, "replace-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(d)
		path := filepath.Join(d, "state.json")
		for _, content := range []string{"first", "second"} {
			tmp := filepath.Join(d, ".tmp")
			if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := Rename(tmp, path); err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			if b, err := os.ReadFile(path); err != nil || string(b) != content {
				t.Errorf("%s: read %q %v, want %q", d, b, err, content)
			}
			if ents, _ := os.ReadDir(d); len(ents) != 1 {
				t.Errorf("%s: left %v", d, ents)
			}
		}
		sub := filepath.Join(d, "sub")
		os.Mkdir(sub, 0o700)
		tmp := filepath.Join(d, ".tmp")
		os.WriteFile(tmp, nil, 0o600)
		if err := Rename(tmp, sub); err == nil {
			t.Errorf("%s: a file replaced directory %s", d, sub)
		}
	}
}
