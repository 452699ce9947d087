package build

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// MaxSecretSize bounds one secret, as BuildKit's (500 KiB).
const MaxSecretSize = 500 * 1024

// maxSecrets bounds how many secrets one build may carry.
const maxSecrets = 1000

// secretsDirPrefix names the per-build secret directories under the
// builder's tmp (a crash leaves them mounted: cleanupTmp unmounts them).
const secretsDirPrefix = "secrets-"

// secretStore holds one build's secrets: files on a private tmpfs (never
// on disk), read from the tar that `berth build --secret` sends ahead of
// the context. Nothing of a secret enters the context, a cache key, a
// layer, the image or the build's output.
type secretStore struct {
	dir   string
	files map[string]string // id -> file under dir
}

// newSecretStore makes a 0700 directory for a build's secrets under tmp,
// on a tmpfs of its own so that secrets never reach the disk. Without
// the right to mount (an unprivileged test), it stays a 0700 directory.
func newSecretStore(tmp string) (*secretStore, error) {
	dir, err := os.MkdirTemp(tmp, secretsDirPrefix)
	if err != nil {
		return nil, err
	}
	size := fmt.Sprintf("size=%d", int64(maxSecrets)*MaxSecretSize/10+1<<20)
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700,"+size); err != nil && !errors.Is(err, unix.EPERM) {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("mount a tmpfs for the build's secrets at %s: %w", dir, err)
	}
	return &secretStore{dir: dir, files: map[string]string{}}, nil
}

// close erases the secrets.
func (s *secretStore) close() {
	if s == nil {
		return
	}
	_ = unix.Unmount(s.dir, unix.MNT_DETACH)
	_ = os.RemoveAll(s.dir)
}

// read takes the secrets tar from r: one regular file per secret, named
// by its id. It reads exactly up to the tar's end-of-archive blocks, so
// what follows in r (the context) is untouched.
func (s *secretStore) read(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the build's secrets: %w: %w", err, errdefs.ErrInvalidArgument)
		}
		id := hdr.Name
		switch {
		case hdr.Typeflag != tar.TypeReg:
			return fmt.Errorf("build secret %q: not a regular file: %w", id, errdefs.ErrInvalidArgument)
		case id == "" || len(id) > 255:
			return fmt.Errorf("build secret id %q: must have 1 to 255 characters: %w", id, errdefs.ErrInvalidArgument)
		case hdr.Size > MaxSecretSize:
			return fmt.Errorf("build secret %s is too big (%d bytes, the limit is %d): %w", id, hdr.Size, MaxSecretSize, errdefs.ErrInvalidArgument)
		case s.files[id] != "":
			return fmt.Errorf("build secret %s is given twice: %w", id, errdefs.ErrInvalidArgument)
		case len(s.files) >= maxSecrets:
			return fmt.Errorf("too many build secrets (the limit is %d): %w", maxSecrets, errdefs.ErrInvalidArgument)
		}
		sum := sha256.Sum256([]byte(id))
		p := filepath.Join(s.dir, hex.EncodeToString(sum[:]))
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
		if err != nil {
			return fmt.Errorf("store build secret %s: %w", id, err)
		}
		_, err = io.Copy(f, io.LimitReader(tr, MaxSecretSize))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("store build secret %s: %w", id, err)
		}
		s.files[id] = p
	}
}

// get is the secret id's file, "" when the build has no such secret.
func (s *secretStore) get(id string) string {
	if s == nil {
		return ""
	}
	return s.files[id]
}

// secretMount resolves RUN --mount=type=secret as BuildKit does: the id
// is id= (or source=), else the target's base name; without env= the
// secret is a read-only file at target (default /run/secrets/<id>), with
// env= it is that environment variable (and a file too if target= is
// given). A missing secret mounts nothing unless required. The cache key
// has the mount's shape, never the secret's content: a changed secret
// reuses the step, as BuildKit.
func (j *job) secretMount(rm *runMounts, m *instructions.Mount) error {
	id := m.CacheID
	if m.Source != "" {
		id = m.Source
	}
	if id == "" {
		if m.Target == "" {
			return fmt.Errorf("RUN --mount=type=secret: one of id, source or target is required: %w", errdefs.ErrInvalidArgument)
		}
		id = path.Base(m.Target)
	}
	target := m.Target
	if m.Env == nil && target == "" {
		target = "/run/secrets/" + path.Base(id)
	}
	if target != "" && !path.IsAbs(target) {
		return fmt.Errorf("RUN --mount=type=secret,id=%s: target %q must be an absolute path: %w", id, target, errdefs.ErrInvalidArgument)
	}
	envName := ""
	if m.Env != nil {
		envName = *m.Env
		if envName == "" {
			envName = id
		}
		if strings.ContainsAny(envName, "=\x00") {
			return fmt.Errorf("RUN --mount=type=secret,id=%s: invalid env name %q: %w", id, envName, errdefs.ErrInvalidArgument)
		}
	}
	mode, uid, gid := uint64(0o400), uint64(0), uint64(0)
	if m.Mode != nil {
		mode = *m.Mode & 0o7777
	}
	if m.UID != nil {
		uid = *m.UID
	}
	if m.GID != nil {
		gid = *m.GID
	}
	rm.key = append(rm.key, "secret", id, target, envName, mode, uid, gid, m.Required)
	src := j.secrets.get(id)
	if src == "" {
		if m.Required {
			return fmt.Errorf("RUN --mount=type=secret,id=%s,required: secret %s was not provided (berth build --secret id=%s,src=FILE): %w", id, id, id, errdefs.ErrInvalidArgument)
		}
		return nil
	}
	if envName != "" {
		b, err := os.ReadFile(src)
		if err != nil {
			return fmt.Errorf("read build secret %s: %w", id, err)
		}
		rm.secretEnv = append(rm.secretEnv, envName+"="+string(b))
	}
	if target == "" {
		return nil
	}
	// A copy of its own per mount: its owner and mode are the mount's,
	// and it vanishes after the RUN.
	f, err := os.CreateTemp(j.secrets.dir, "run-")
	if err != nil {
		return fmt.Errorf("build secret %s: %w", id, err)
	}
	cp := f.Name()
	rm.release = append(rm.release, func() { os.Remove(cp) })
	in, err := os.Open(src)
	if err == nil {
		_, err = io.Copy(f, in)
		in.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chown(cp, int(uid), int(gid))
	}
	if err == nil {
		err = os.Chmod(cp, os.FileMode(mode&0o777)|unixModeBits(uint32(mode)))
	}
	if err != nil {
		return fmt.Errorf("build secret %s: %w", id, err)
	}
	rm.mounts = append(rm.mounts, specs.Mount{Destination: path.Clean(target), Type: "bind", Source: cp,
		Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
	return nil
}
