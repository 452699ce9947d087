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
	"github.com/moby/patternmatcher"
	"github.com/opencontainers/go-digest"
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
	// UnpackRemote: ADD --unpack=true, the only way a download or a
	// git checkout is unpacked (as BuildKit).
	UnpackRemote bool
	// Checksum is ADD --checksum (a digest of a download, a commit of a
	// git source); KeepGitDir ADD --keep-git-dir.
	Checksum   string
	KeepGitDir bool
}

// source is one matched COPY source.
type source struct {
	path string // resolved host path
	name string // base name for the destination
	dir  bool
	// keep is the path kept under the destination (--parents), "" for
	// none.
	keep string
	// remote: a download or a git checkout.
	remote bool
	// excl are the --exclude patterns (nil: none), matched against the
	// paths inside a directory source.
	excl *patternmatcher.PatternMatcher
}

// copyStep is COPY and ADD: files from the context (or another stage or
// image with --from) go into the stage's filesystem as a new layer. The
// cache key holds the content of every file read, not their times.
func (j *job) copyStep(ctx context.Context, st *stageState, a copyArgs, name string) error {
	if a.Checksum != "" {
		// BuildKit's rules and words.
		if len(a.SourcePaths)+len(a.SourceContents) != 1 {
			return fmt.Errorf("checksum can't be specified for multiple sources: %w", errdefs.ErrInvalidArgument)
		}
		if len(a.SourcePaths) != 1 || !isRemote(a.SourcePaths[0]) {
			return fmt.Errorf("checksum requires HTTP(S) or Git sources: %w", errdefs.ErrInvalidArgument)
		}
	}
	var excl *patternmatcher.PatternMatcher
	if len(a.Exclude) > 0 {
		var err error
		if excl, err = patternmatcher.New(a.Exclude); err != nil {
			return fmt.Errorf("%s --exclude: %w: %w", name, err, errdefs.ErrInvalidArgument)
		}
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
			srcs, err := resolveSourcesOpts(root, a.SourcePaths, a.Parents, excl)
			if err != nil {
				return fmt.Errorf("%s failed: %w", name, err)
			}
			return copyInto(ctx, w.rootfs, st.cfg.WorkingDir, srcs, a, mode)
		})
	}
	root := j.ctxDir
	paths := a.SourcePaths
	remote := false
	if len(a.SourceContents) > 0 || hasRemote(paths) {
		if !a.Add && hasRemote(paths) {
			return fmt.Errorf("source can't be a URL or a git repository for COPY: %w", errdefs.ErrInvalidArgument)
		}
		remote = hasRemote(paths)
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
	srcs, err := resolveSourcesOpts(root, paths, a.Parents, excl)
	if err != nil {
		return fmt.Errorf("%s failed: %w", name, err)
	}
	for i := range srcs {
		srcs[i].remote = remote
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
	if len(srcs) > 1 || len(srcs) == 1 && srcs[0].dir {
		kind = "dir"
	}
	hist := ocispec.History{CreatedBy: fmt.Sprintf("/bin/sh -c #(nop) %s %s:%s in %s ", name, kind, sum, a.DestPath)}
	return j.layerStep(ctx, st, key, hist, func(w *workdir) error {
		return copyInto(ctx, w.rootfs, st.cfg.WorkingDir, srcs, a, mode)
	})
}

// unixModeBits are the setuid, setgid and sticky bits of a numeric
// mode as os.FileMode.
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
	// An image is read for the stage's platform, as BuildKit.
	img, err := j.stageImage(ctx, from, st, false)
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

func hasRemote(paths []string) bool {
	for _, p := range paths {
		if isRemote(p) {
			return true
		}
	}
	return false
}

func isURL(p string) bool {
	return strings.HasPrefix(p, "http://") || strings.HasPrefix(p, "https://")
}

// isRemote: a download or a git repository.
func isRemote(p string) bool { return isURL(p) || gitSource(p) != nil }

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
	for i, p := range a.SourcePaths {
		if g := gitSource(p); g != nil {
			name, err := gitCheckout(ctx, tmp, fmt.Sprintf("git-%d", i), g, a.Checksum, a.KeepGitDir)
			if err != nil {
				return nil, err
			}
			out = append(out, name)
			continue
		}
		if !isURL(p) {
			// Context files (globs included) and staged ones would need
			// one root: not supported together.
			return nil, fmt.Errorf("ADD/COPY cannot mix URLs, git repositories or heredocs with context files in one instruction: %w", errdefs.ErrNotImplemented)
		}
		name, err := download(ctx, tmp, p, a.Checksum)
		if err != nil {
			return nil, err
		}
		out = append(out, name)
	}
	return out, nil
}

// download fetches u into dir under its last path element (mode 0600, as
// Docker), checking its digest against checksum when given.
func download(ctx context.Context, dir, u, checksum string) (string, error) {
	var want digest.Digest
	if checksum != "" {
		var err error
		if want, err = digest.Parse(checksum); err != nil {
			return "", fmt.Errorf("ADD --checksum=%s: %w: %w", checksum, err, errdefs.ErrInvalidArgument)
		}
	}
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
	var w io.Writer = f
	var dg digest.Digester
	if want != "" {
		dg = want.Algorithm().Digester()
		w = io.MultiWriter(f, dg.Hash())
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		f.Close()
		return "", fmt.Errorf("ADD failed: fetch %s: %w", u, err)
	}
	if dg != nil && dg.Digest() != want {
		f.Close()
		return "", fmt.Errorf("ADD failed: %s: digest mismatch: --checksum=%s, got %s: %w", u, want, dg.Digest(), errdefs.ErrInvalidArgument)
	}
	return name, f.Close()
}

// resolveSources matches the source patterns in root. Every match is
// resolved inside root: symlinks cannot lead out of it.
func resolveSources(root string, patterns []string) ([]source, error) {
	return resolveSourcesOpts(root, patterns, false, nil)
}

// resolveSourcesOpts is resolveSources with COPY --parents (each match
// keeps its path from root, or from a "/./" pivot in its pattern) and
// --exclude patterns (a matched file or directory they name is left
// out; inside directories they apply to the paths below it).
func resolveSourcesOpts(root string, patterns []string, parents bool, excl *patternmatcher.PatternMatcher) ([]source, error) {
	var out []source
	for _, p := range patterns {
		keepFrom := "/"
		if parents {
			if base, rest, ok := strings.Cut(p, "/./"); ok {
				keepFrom, p = path.Clean("/"+base), path.Join(base, rest)
			}
		}
		rel := path.Clean("/" + p)
		var matches []string
		if strings.Contains(rel, "**") {
			ms, err := globStar(root, rel)
			if err != nil {
				return nil, fmt.Errorf("bad source pattern %q: %w: %w", p, err, errdefs.ErrInvalidArgument)
			}
			matches = ms
		} else if strings.ContainsAny(rel, "*?[") {
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
			if excl != nil && m != "/" {
				byPath, err := excl.MatchesOrParentMatches(strings.TrimPrefix(m, "/"))
				if err != nil {
					return nil, err
				}
				byName, _ := excl.MatchesOrParentMatches(path.Base(m))
				if byPath || byName {
					continue
				}
			}
			s := source{path: full, name: path.Base(m), dir: fi.IsDir(), excl: excl}
			if parents {
				k, err := filepath.Rel(keepFrom, m)
				if err != nil || k == ".." || strings.HasPrefix(k, "../") {
					return nil, fmt.Errorf("COPY --parents: %s is not below %s: %w", m, keepFrom, errdefs.ErrInvalidArgument)
				}
				if k != "." {
					s.keep = k
				}
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// globStar matches a pattern with "**" (any number of directories) in
// root, as BuildKit's COPY --parents patterns: every path below root is
// matched, none through a symlink out of it.
func globStar(root, pattern string) ([]string, error) {
	pm, err := patternmatcher.New([]string{strings.TrimPrefix(pattern, "/")})
	if err != nil {
		return nil, err
	}
	var out []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		ok, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		if ok {
			out = append(out, "/"+filepath.ToSlash(rel))
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	return out, err
}

// excluded reports whether rel (a path inside a directory source) is
// left out by the source's --exclude patterns.
func (s source) excluded(rel string) bool {
	if s.excl == nil || rel == "." {
		return false
	}
	ok, _ := s.excl.MatchesOrParentMatches(filepath.ToSlash(rel))
	return ok
}

// hashTree adds a source's content to h: names, types, permissions, link
// targets and file contents; never times or owners (COPY resets those).
func hashTree(h hash.Hash, s source) error {
	fmt.Fprintf(h, "source %s %v %q\n", s.name, s.dir, s.keep)
	return filepath.WalkDir(s.path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.path, p)
		if s.excluded(rel) {
			// An excluded file's content is not read: changing it keeps
			// the cache.
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
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
	if a.Parents {
		// Every source keeps its path under dest.
		destIsDir = true
	}
	if len(srcs) > 1 && !destIsDir {
		return fmt.Errorf("When using COPY with more than one source file, the destination must be a directory and end with a /: %w", errdefs.ErrInvalidArgument)
	}
	for _, s := range srcs {
		if err := ctx.Err(); err != nil {
			return err
		}
		unpackIt := a.Unpack
		if s.remote {
			unpackIt = a.UnpackRemote
		}
		switch {
		case s.dir:
			to := dest
			if s.keep != "" {
				to = path.Join(dest, filepath.ToSlash(s.keep))
			}
			if err := mkdirAllIn(rootfs, to, own); err != nil {
				return err
			}
			if err := copyTreeExcluding(rootfs, s, to, own, mode); err != nil {
				return err
			}
		case a.Add && unpackIt && isArchive(s.path):
			if err := mkdirAllIn(rootfs, dest, own); err != nil {
				return err
			}
			if err := unpack(ctx, rootfs, s.path, dest); err != nil {
				return fmt.Errorf("ADD %s: unpack: %w", s.name, err)
			}
		default:
			target := dest
			if s.keep != "" {
				target = path.Join(dest, filepath.ToSlash(s.keep))
			} else if destIsDir {
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
	return copyTreeExcluding(rootfs, source{path: src}, dest, own, mode)
}

// copyTreeExcluding copies the contents of the directory source s to
// dest in rootfs, without what its --exclude patterns name.
func copyTreeExcluding(rootfs string, s source, dest string, own owner, mode *os.FileMode) error {
	src := s.path
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		if s.excluded(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
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
