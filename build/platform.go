package build

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/pull"
	"github.com/berth-dev/berth/image/store"
)

// binfmtDir is where the kernel lists its binfmt_misc handlers.
var binfmtDir = "/proc/sys/fs/binfmt_misc"

// qemuArch is the name QEMU (and so its binfmt_misc handlers,
// "qemu-<name>") gives an OCI architecture.
var qemuArch = map[string]string{
	"amd64": "x86_64", "386": "i386", "arm64": "aarch64", "arm": "arm",
	"ppc64le": "ppc64le", "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64",
	"mips64le": "mips64el", "mips64": "mips64", "mipsle": "mipsel", "mips": "mips",
	"loong64": "loongarch64",
}

// canRun says whether a RUN on platform p can execute here: p is the
// host's, or an enabled binfmt_misc handler (qemu-user) runs its
// binaries. The error names the platform.
func (j *job) canRun(p ocispec.Platform) error {
	if store.PlatformMatches(p, j.host) {
		return nil
	}
	name := qemuArch[p.Architecture]
	if name == "" {
		name = p.Architecture
	}
	ents, _ := os.ReadDir(binfmtDir)
	for _, e := range ents {
		n := e.Name()
		if n != "qemu-"+name && !strings.HasSuffix(n, "-"+name) && n != name {
			continue
		}
		b, err := os.ReadFile(filepath.Join(binfmtDir, n))
		if err == nil && bytes.HasPrefix(b, []byte("enabled")) {
			return nil
		}
	}
	return fmt.Errorf("RUN on platform %s: this host is %s and cannot execute %s binaries (no binfmt_misc handler for %s is registered in %s; install qemu-user-binfmt to emulate it): %w",
		pull.FormatPlatform(p), pull.FormatPlatform(j.host), p.Architecture, name, binfmtDir, errdefs.ErrNotImplemented)
}
