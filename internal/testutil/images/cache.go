package images

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// cacheVersion changes whenever the bytes any builder writes change, so old
// cache entries are never reused for new fixtures.
const cacheVersion = "v2"

// CacheDir is where fixture images are cached.
func CacheDir() string {
	if d := os.Getenv("BERTH_TESTCACHE"); d != "" {
		return filepath.Join(d, "images")
	}
	return filepath.Join(os.TempDir(), "berth-testcache", "images")
}

var cacheLocks sync.Map // key -> *sync.Mutex

// cacheKey hashes the inputs of a builder into a directory name.
func cacheKey(kind string, inputs ...any) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s", cacheVersion, kind)
	for _, in := range inputs {
		b, err := json.Marshal(in)
		if err != nil {
			panic(err)
		}
		h.Write([]byte{0})
		h.Write(b)
	}
	return kind + "-" + hex.EncodeToString(h.Sum(nil))[:20]
}

// cached returns the image cached under key, building it with build (into
// a fresh directory, renamed into place when complete) when missing.
func cached(key string, build func(dir string) (*Image, error)) (*Image, error) {
	mu, _ := cacheLocks.LoadOrStore(key, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()

	base := CacheDir()
	dir := filepath.Join(base, key)
	if img, err := Load(dir); err == nil {
		return img, nil
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(base, ".build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	if _, err := build(tmp); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process finished first: use its image.
		if img, lerr := Load(dir); lerr == nil {
			return img, nil
		}
		return nil, fmt.Errorf("image cache: rename %q to %q: %w", tmp, dir, err)
	}
	return Load(dir)
}
