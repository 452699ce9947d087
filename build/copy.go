package build

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/container/spec"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/compression"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/apply"
)

// copyArgs are COPY's and ADD's parameters.
type copyArgs struct {
	instructions.SourcesAndDest
	From, Chown, Chmod string
	Parents, Link      bool
	Exclude            []string
	Add, Unpack        bool
}

// source is one matched COPY source.
type source struct {
	path string // resolved host path
	name string // base name for the destination
	dir  bool
}

// copyStep is COPY and ADD: files from the context (or another stage or
// image with --from) go into the stage's filesystem as a new layer. The
// cache key holds the content of every file read, not their times.
func (j *job) copyStep(ctx context.Context, st *stageState, a copyArgs, name string) error {
	if a.Parents {
		return fmt.Errorf("%s --parents is not supported: %w", name, errdefs.ErrNotImplemented)
	}
	if len(a.Exclude) > 0 {
		return fmt.Errorf("%s --exclude is not supported: %w", name, errdefs.ErrNotImplemented)
	}
	var mode *os.FileMode
	if a.Chmod != "" {
		m, err := strconv.ParseUint(a.Chmod, 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("invalid --chmod=%s: only octal modes are supported: %w", a.Chmod, errdefs.ErrInvalidArgument)
		}
		fm := os.FileMode(m&0o777) | unixModeBits(uint32(m))
		mode = &fm
	}
	lex := shell.NewLex(j.p.escape)
	from, _, err := lex.ProcessWord(a.From, st.vars())
	if err != nil {
		return err
	}
	if from != "" {
		fromID, err := j.fromSource(ctx, st, from)
		if err != nil {
			return err
		}
		// An image is immutable: its ID stands for the files read.
		key := stepKey(st.key, name, a, fromID, st.cfg.WorkingDir)
		hist := ocispec.History{CreatedBy: fmt.Sprintf("/bin/sh -c #(nop) %s --from=%s %s in %s ", name, from, strings.Join(a.SourcePaths, " "), a.DestPath)}
		return j.layerStep(ctx, st, key, hist, func(w *workdir) error {
			root, release, err := j.mountImage(ctx, fromID)
			if err != nil {
				return err
			}
			defer release()
			srcs, err := resolveSources(root, a.SourcePaths)
			if err != nil {
				return fmt.Errorf("%s failed: %w", name, err)
			}
			return copyInto(ctx, w.rootfs, st.cfg.WorkingDir, srcs, a, mode)
		})
	}
	root := j.ctxDir
	paths := a.SourcePaths
	if len(a.SourceContents) > 0 || hasURL(paths) {
		if !a.Add && hasURL(paths) {
			return fmt.Errorf("source can't be a URL for COPY: %w", errdefs.ErrInvalidArgument)
		}
		// Inline (heredoc) files and downloads are staged in a directory
		// of their own and copied from there.
		tmp, err := os.MkdirTemp(filepath.Join(j.b.cfg.Dir, "tmp"), "src-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if paths, err = stageExtra(ctx, tmp, a); err != nil {
			return err
		}
		root = tmp
	}
	srcs, err := resolveSources(root, paths)
	if err != nil {
		return fmt.Errorf("%s failed: %w", name, err)
	}
	h := sha256.New()
	for _, s := range srcs {
		if err := hashTree(h, s); err != nil {
			return err
		}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	key := stepKey(st.key, name, a, sum, st.cfg.WorkingDir)
	kind := "file"
	if len(srcs) > 1 || srcs[0].dir {
		kind = "dir"
	}
	hist := ocispec.History{CreatedBy: fmt.Sprintf("/bin/sh -c #(nop) %s %s:%s in %s ", name, kind, sum, a.DestPath)}
	return j.layerStep(ctx, st, key, hist, func(w *workdir) error {
		return copyInto(ctx, w.rootfs, st.cfg.WorkingDir, srcs, a, mode)
	})
}

func unixModeBits(m uint32) os.FileMode {
	var out os.FileMode
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

// fromSource is the image --from names: an earlier stage (already built:
// the stage waited for it) or an image.
func (j *job) fromSource(ctx context.Context, st *stageState, from string) (string, error) {
	k, err := j.stageRef(from, st.idx)
	if err != nil {
		return "", err
	}
	if k >= 0 {
		if j.results[k].id == "" {
			return "", fmt.Errorf("stage %s has no filesystem to copy from: %w", from, errdefs.ErrInvalidArgument)
		}
		return j.results[k].id, nil
	}
	img, err := j.image(ctx, from, false)
	if err != nil {
		return "", err
	}
	return img.ID.String(), nil
}

// mountImage mounts a throwaway snapshot of image id to read from.
func (j *job) mountImage(ctx context.Context, id string) (string, func(), error) {
	snap := "build-from-" + randomHex(8)
	mounts, releaseLease, err := j.b.cfg.Images.PrepareBuild(ctx, id, snap)
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp(filepath.Join(j.b.cfg.Dir, "tmp"), "from-")
	if err != nil {
		j.b.cfg.Images.RemoveBuild(context.WithoutCancel(ctx), snap)
		releaseLease()
		return "", nil, err
	}
	root := filepath.Join(dir, "rootfs")
	release := func() {
		_ = snapshot.UnmountAll(root)
		os.RemoveAll(dir)
		j.b.cfg.Images.RemoveBuild(context.WithoutCancel(ctx), snap)
		releaseLease()
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		release()
		return "", nil, err
	}
	if err := snapshot.MountAll(mounts, root); err != nil {
		release()
		return "", nil, err
	}
	return root, release, nil
}

func hasURL(paths []string) bool {
	for _, p := range paths {
		if isURL(p) {
			return true
		}
	}
	return false
}

func isURL(p string) bool {
	return strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://")
}

// stageExtra writes heredoc sources and downloads into tmp, links the
// context's other sources there, and returns the source paths in tmp.
func stageExtra(ctx context.Context, tmp string, a copyArgs) ([]string, error) {
	var out []string
	for i, c := range a.SourceContents {
		name := path.Base(path.Clean("/" + c.Path))
		if name == "/" {
			name = fmt.Sprintf("heredoc-%d", i)
		}
		if err := os.WriteFile(filepath.Join(tmp, name), []byte(c.Data), 0o644); err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	for _, p := range a.SourcePaths {
		if !isURL(p) {
			// Context files (globs included) and staged ones would need
			// one root: not supported together.
			return nil, fmt.Errorf("ADD/COPY cannot mix URLs or heredocs with context files in one instruction: %w", errdefs.ErrNotImplemented)
		}
		name, err := download(ctx, tmp, p)
		if err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, nil
}

// download fetches u into dir under its last path element (mode 0600, as
// Docker).
func download(ctx context.Context, dir, u string) (string, error) {
	pu, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("ADD %s: %w: %w", u, err, errdefs.ErrInvalidArgument)
	}
	name := path.Base(pu.Path)
	if name == "/" || name == "." || name == "" {
		name = "download"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("ADD failed: fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ADD failed: fetch %s: %s", u, resp.Status)
	}
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return "", fmt.Errorf("ADD failed: fetch %s: %w", u, err)
	}
	return name, f.Close()
}

// resolveSources matches the source patterns in root. Every match is
// resolved inside root: symlinks cannot lead out of it.
func resolveSources(root string, patterns []string) ([]source, error) {
	var out []source
	for _, p := range patterns {
		rel := path.Clean("/" + p)
		var matches []string
		if strings.ContainsAny(rel, "*?[") {
			ms, err := filepath.Glob(filepath.Join(root, rel))
			if err != nil {
				return nil, fmt.Errorf("bad source pattern %q: %w: %w", p, err, errdefs.ErrInvalidArgument)
			}
			for _, m := range ms {
				r, err := filepath.Rel(root, m)
				if err != nil || r == ".." || strings.HasPrefix(r, "../") {
					continue
				}
				matches = append(matches, "/"+r)
			}
		} else {
			matches = []string{rel}
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("file not found in build context or excluded by .dockerignore: stat %s: file does not exist: %w", p, errdefs.ErrInvalidArgument)
		}
		for _, m := range matches {
			full, err := securejoin.SecureJoin(root, m)
			if err != nil {
				return nil, err
			}
			fi, err := os.Stat(full)
			if err != nil {
				return nil, fmt.Errorf("file not found in build context or excluded by .dockerignore: stat %s: file does not exist: %w", strings.TrimPrefix(m, "/"), errdefs.ErrInvalidArgument)
			}
			out = append(out, source{path: full, name: path.Base(m), dir: fi.IsDir()})
		}
	}
	return out, nil
}

// hashTree adds a source's content to h: names, types, permissions, link
// targets and file contents; never times or owners (COPY resets those).
func hashTree(h hash.Hash, s source) error {
	fmt.Fprintf(h, "source %s %v\n", s.name, s.dir)
	return filepath.WalkDir(s.path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.path, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%q %o\n", rel, fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "-> %q\n", t)
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return err
			}
			h.Write(fh.Sum(nil))
		}
		return nil
	})
}

// owner is the uid and gid copied files get.
type owner struct{ uid, gid int }

// copyInto copies the sources into rootfs at a.DestPath (relative to
// workdir), with Docker's rules: a directory's contents are copied; a
// file goes to dest, or into it when dest ends with "/" or is a
// directory; ADD unpacks local tar archives.
func copyInto(ctx context.Context, rootfs, workdir string, srcs []source, a copyArgs, mode *os.FileMode) error {
	own := owner{}
	if a.Chown != "" {
		u, err := spec.ResolveUser(rootfs, a.Chown, nil)
		if err != nil {
			return fmt.Errorf("--chown=%s: %w", a.Chown, err)
		}
		own = owner{int(u.UID), int(u.GID)}
	}
	dest := a.DestPath
	destIsDir := strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
	if !path.IsAbs(dest) {
		if workdir == "" {
			workdir = "/"
		}
		dest = path.Join(workdir, dest)
	}
	dest = path.Clean(dest)
	if !destIsDir {
		if full, err := resolveIn(rootfs, dest); err == nil {
			if fi, err := os.Stat(full); err == nil && fi.IsDir() {
				destIsDir = true
			}
		}
	}
	if len(srcs) > 1 && !destIsDir {
		return fmt.Errorf("When using COPY with more than one source file, the destination must be a directory and end with a /: %w", errdefs.ErrInvalidArgument)
	}
	for _, s := range srcs {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch {
		case s.dir:
			if err := mkdirAllIn(rootfs, dest, own); err != nil {
				return err
			}
			if err := copyTree(rootfs, s.path, dest, own, mode); err != nil {
				return err
			}
		case a.Add && a.Unpack && isArchive(s.path):
			if err := mkdirAllIn(rootfs, dest, own); err != nil {
				return err
			}
			if err := unpack(ctx, rootfs, s.path, dest); err != nil {
				return fmt.Errorf("ADD %s: unpack: %w", s.name, err)
			}
		default:
			target := dest
			if destIsDir {
				target = path.Join(dest, s.name)
			}
			if err := mkdirAllIn(rootfs, path.Dir(target), own); err != nil {
				return err
			}
			full, err := resolveIn(rootfs, target)
			if err != nil {
				return err
			}
			fi, err := os.Stat(s.path)
			if err != nil {
				return err
			}
			if err := copyEntry(s.path, full, fi, own, mode); err != nil {
				return err
			}
		}
	}
	return nil
}

// resolveIn is p's host path in rootfs: its parent resolved inside rootfs
// (symlinks included), its last element as is (it is replaced, not
// followed).
func resolveIn(rootfs, p string) (string, error) {
	p = path.Clean("/" + p)
	if p == "/" {
		return rootfs, nil
	}
	parent, err := securejoin.SecureJoin(rootfs, path.Dir(p))
	if err != nil {
		return "", err
	}
	return filepath.Join(parent, path.Base(p)), nil
}

// mkdirAllIn creates dir in rootfs and its missing parents (owned by own).
func mkdirAllIn(rootfs, dir string, own owner) error {
	dir = path.Clean("/" + dir)
	if dir == "/" {
		return nil
	}
	if err := mkdirAllIn(rootfs, path.Dir(dir), own); err != nil {
		return err
	}
	full, err := securejoin.SecureJoin(rootfs, dir)
	if err != nil {
		return err
	}
	fi, err := os.Stat(full)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("cannot copy to %s: not a directory: %w", dir, errdefs.ErrInvalidArgument)
		}
		return nil
	}
	// full lies inside rootfs; a symlink in the image may point to a path
	// whose parents do not exist yet.
	if err := os.MkdirAll(full, 0o755); err != nil {
		return err
	}
	return os.Lchown(full, own.uid, own.gid)
}

// copyTree copies the contents of directory src to dest in rootfs.
func copyTree(rootfs, src, dest string, own owner, mode *os.FileMode) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		full, err := resolveIn(rootfs, path.Join(dest, filepath.ToSlash(rel)))
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return copyEntry(p, full, fi, own, mode)
	})
}

// copyEntry copies one file, directory or symlink to the host path dst
// (already resolved inside the rootfs).
func copyEntry(src, dst string, fi os.FileInfo, own owner, mode *os.FileMode) error {
	perm := fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
	if mode != nil {
		perm = *mode
	}
	existing, lerr := os.Lstat(dst)
	switch {
	case fi.IsDir():
		if lerr == nil && !existing.IsDir() {
			if err := os.Remove(dst); err != nil {
				return err
			}
			lerr = os.ErrNotExist
		}
		if lerr != nil {
			if err := os.Mkdir(dst, 0o700); err != nil {
				return err
			}
		}
		if err := os.Lchown(dst, own.uid, own.gid); err != nil {
			return err
		}
		return os.Chmod(dst, perm)
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if lerr == nil {
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
		}
		if err := os.Symlink(t, dst); err != nil {
			return err
		}
		return os.Lchown(dst, own.uid, own.gid)
	case fi.Mode().IsRegular():
		if lerr == nil && !existing.Mode().IsRegular() {
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
		}
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		if err := out.Chown(own.uid, own.gid); err != nil {
			out.Close()
			return err
		}
		// Chmod after chown: chown clears setuid bits.
		if err := out.Chmod(perm); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		mt := fi.ModTime()
		return os.Chtimes(dst, mt, mt)
	default:
		// Devices, fifos and sockets in a context are not copied.
		return nil
	}
}

// isArchive reports whether the file is a tar archive, compressed or not
// (what ADD unpacks).
func isArchive(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	r, _, err := compression.DecompressStream(bufio.NewReader(f))
	if err != nil {
		return false
	}
	defer r.Close()
	_, err = tar.NewReader(r).Next()
	return err == nil
}

// unpack extracts the archive src into dest in rootfs, with the layer
// applier's protections (no path leaves the target).
func unpack(ctx context.Context, rootfs, src, dest string) error {
	full, err := securejoin.SecureJoin(rootfs, dest)
	if err != nil {
		return err
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	r, _, err := compression.DecompressStream(f)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := apply.Apply(ctx, full, r, apply.Options{NoSync: true}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
