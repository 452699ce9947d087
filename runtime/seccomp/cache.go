package seccomp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"

	"github.com/berth-dev/berth/runtime/rawio"
)

// cacheFormat changes whenever Compile could turn the same config into a
// different program, so that older cache entries are never used.
const cacheFormat = "berth-seccomp-cache/3"

// CompileCached is Compile with the program kept in dir, keyed by the
// config, salt (the runtime's version) and libseccomp's version: an engine
// gives most containers the same profile, and generating its BPF is a
// third of a container create's CPU time. dir must be as trusted as the
// runtime's state (a program found there is loaded as it is); a missing
// or unreadable entry is compiled again, and failing to store one is not
// an error.
func CompileCached(c *specs.LinuxSeccomp, dir, salt string) (*Filter, error) {
	if c == nil || dir == "" {
		return Compile(c)
	}
	cfg, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("seccomp: encode config: %w", err)
	}
	maj, min, micro := libseccomp.GetLibraryVersion()
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d.%d.%d\x00", cacheFormat, salt, maj, min, micro)
	h.Write(cfg)
	path := filepath.Join(dir, hex.EncodeToString(h.Sum(nil)))
	if b, err := rawio.ReadFile(path); err == nil {
		f := new(Filter)
		if f.UnmarshalBinary(b) == nil {
			return f, nil
		}
	}
	f, err := Compile(c)
	if err != nil || f == nil {
		return f, err
	}
	store(dir, path, f)
	return f, nil
}

// store writes f at path atomically: a concurrent reader sees the whole
// program or nothing.
func store(dir, path string, f *Filter) {
	b, err := f.MarshalBinary()
	if err != nil {
		return
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), path) != nil {
		os.Remove(tmp.Name())
	}
}
