package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
)

// runMounts are a RUN's --mount flags, ready for its container: the OCI
// mounts, what keys the step in the cache, and what to release after.
type runMounts struct {
	mounts  []specs.Mount
	key     []any
	release []func()
	unlock  []func()
	// secretEnv are secrets given to the RUN as variables (env=): never
	// part of the key or the history.
	secretEnv []string
}

func (m *runMounts) done() {
	for _, u := range m.unlock {
		u()
	}
	for i := len(m.release) - 1; i >= 0; i-- {
		m.release[i]()
	}
}

// cacheLocks serialise RUNs sharing a cache mount with sharing=locked
// (and private, which is treated as locked: one user at a time).
var cacheLocks sync.Map // dir -> *sync.Mutex

// prepareMounts resolves a RUN's --mount flags:
//   - cache: a directory under the builder's state, per id (default the
//     target), kept across builds;
//   - tmpfs: a fresh tmpfs;
//   - bind: a context path or a path of a stage or image (--from),
//     read-only unless rw, whose writes are then thrown away;
//   - secret: a secret `berth build --secret` sent (see secretMount).
//
// An ssh mount would need the client's agent, which the /build API
// cannot carry: it fails with a clear error.
func (j *job) prepareMounts(ctx context.Context, st *stageState, c *instructions.RunCommand) (*runMounts, error) {
	rm := &runMounts{}
	ok := false
	defer func() {
		if !ok {
			rm.done()
		}
	}()
	lex := shell.NewLex(j.p.escape)
	for _, m := range instructions.GetMounts(c) {
		if m.Type == instructions.MountTypeSSH {
			// Forwarding the client's agent socket would let any API
			// client make berthd sign with whatever agent it names.
			return nil, fmt.Errorf("RUN --mount=type=ssh is not supported: berthd cannot forward an SSH agent over the /build API (copy what the step needs in a secret: berth build --secret): %w", errdefs.ErrNotImplemented)
		}
		if m.Type == instructions.MountTypeSecret {
			if err := j.secretMount(rm, m); err != nil {
				return nil, err
			}
			continue
		}
		target := m.Target
		if target == "" {
			return nil, fmt.Errorf("RUN --mount=type=%s: target is required: %w", m.Type, errdefs.ErrInvalidArgument)
		}
		if !path.IsAbs(target) {
			base := st.cfg.WorkingDir
			if base == "" {
				base = "/"
			}
			target = path.Join(base, target)
		}
		target = path.Clean(target)
		switch m.Type {
		case instructions.MountTypeCache:
			if m.From != "" {
				return nil, fmt.Errorf("RUN --mount=type=cache,from=%s is not supported: %w", m.From, errdefs.ErrNotImplemented)
			}
			id := m.CacheID
			if id == "" {
				id = target
			}
			sum := sha256.Sum256([]byte(id))
			dir := filepath.Join(j.b.cfg.Dir, "cache-mounts", hex.EncodeToString(sum[:16]))
			if _, err := os.Stat(dir); os.IsNotExist(err) {
				if err := newCacheDir(dir, m); err != nil {
					return nil, err
				}
			}
			if m.CacheSharing == instructions.MountSharingLocked || m.CacheSharing == instructions.MountSharingPrivate {
				mu, _ := cacheLocks.LoadOrStore(dir, &sync.Mutex{})
				mu.(*sync.Mutex).Lock()
				rm.unlock = append(rm.unlock, mu.(*sync.Mutex).Unlock)
			}
			rm.mounts = append(rm.mounts, bindMount(dir, target, m.ReadOnly))
			// A cache's content is never part of the key: that is what
			// makes it a cache.
			rm.key = append(rm.key, "cache", id, target, m.ReadOnly)
		case instructions.MountTypeTmpfs:
			opts := []string{"nosuid", "nodev", "mode=1777"}
			if m.SizeLimit > 0 {
				opts = append(opts, "size="+strconv.FormatInt(m.SizeLimit, 10))
			}
			rm.mounts = append(rm.mounts, specs.Mount{Destination: target, Type: "tmpfs", Source: "tmpfs", Options: opts})
			rm.key = append(rm.key, "tmpfs", target, m.SizeLimit)
		case instructions.MountTypeBind:
			root := j.ctxDir
			if m.From != "" {
				from, _, err := lex.ProcessWord(m.From, st.vars())
				if err != nil {
					return nil, err
				}
				id, err := j.fromSource(ctx, st, from)
				if err != nil {
					return nil, err
				}
				r, release, err := j.mountImage(ctx, id)
				if err != nil {
					return nil, err
				}
				rm.release = append(rm.release, release)
				root = r
				rm.key = append(rm.key, "bind-from", id)
			}
			src, err := securejoin.SecureJoin(root, path.Clean("/"+m.Source))
			if err != nil {
				return nil, err
			}
			if _, err := os.Stat(src); err != nil {
				return nil, fmt.Errorf("RUN --mount=type=bind: source %q not found: %w", m.Source, errdefs.ErrInvalidArgument)
			}
			if m.From == "" {
				// What the RUN reads from the context keys the step.
				h := sha256.New()
				if err := hashTree(h, source{path: src, name: m.Source}); err != nil {
					return nil, err
				}
				rm.key = append(rm.key, "bind", hex.EncodeToString(h.Sum(nil)))
			}
			if !m.ReadOnly {
				// Writes to a rw bind mount are thrown away: the RUN
				// gets a copy.
				tmp, err := os.MkdirTemp(filepath.Join(j.b.cfg.Dir, "tmp"), "bind-")
				if err != nil {
					return nil, err
				}
				rm.release = append(rm.release, func() { os.RemoveAll(tmp) })
				dst := filepath.Join(tmp, "src")
				fi, err := os.Stat(src)
				if err != nil {
					return nil, err
				}
				if fi.IsDir() {
					if err := os.Mkdir(dst, 0o755); err != nil {
						return nil, err
					}
					if err := copyTree(dst, src, "/", owner{}, nil); err != nil {
						return nil, err
					}
				} else if err := copyEntry(src, dst, fi, owner{}, nil); err != nil {
					return nil, err
				}
				src = dst
			}
			rm.mounts = append(rm.mounts, bindMount(src, target, m.ReadOnly))
			rm.key = append(rm.key, "bind", m.Source, target, m.ReadOnly)
		default:
			return nil, fmt.Errorf("RUN --mount=type=%s is not supported: %w", m.Type, errdefs.ErrNotImplemented)
		}
	}
	ok = true
	return rm, nil
}

// newCacheDir creates a cache mount's directory with its uid, gid and
// mode (BuildKit's defaults: root, 0755).
func newCacheDir(dir string, m *instructions.Mount) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	// A name of its own: stages running in parallel may create the same
	// cache at once.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".new-")
	if err != nil {
		return err
	}
	mode := os.FileMode(0o755)
	if m.Mode != nil {
		mode = os.FileMode(*m.Mode & 0o7777)
	}
	uid, gid := 0, 0
	if m.UID != nil {
		uid = int(*m.UID)
	}
	if m.GID != nil {
		gid = int(*m.GID)
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	// Never replace one that another step created meanwhile (and may
	// have mounted already): both must share it.
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(dir); serr != nil {
			return fmt.Errorf("cache mount %s: %w", dir, err)
		}
	}
	return nil
}

func bindMount(src, target string, ro bool) specs.Mount {
	opts := []string{"rbind", "rw"}
	if ro {
		opts = []string{"rbind", "ro"}
	}
	return specs.Mount{Destination: target, Type: "bind", Source: src, Options: opts}
}
