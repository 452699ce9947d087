package daemon_test

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
)

// tarDir writes the regular files of dir (flat) as a tar to w.
func tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.Name(), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	return tw.Close()
}

func writeFile(p, s string) error { return os.WriteFile(p, []byte(s), 0o644) }

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	return string(b), err
}
