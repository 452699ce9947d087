package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/buildkit/frontend/dockerfile/dfgitutil"

	"github.com/berth-dev/berth/errdefs"
)

// gitSource parses an ADD source as BuildKit does ("https://host/r.git",
// "git@host:r.git", "git://...", with "#ref:subdir" or "?ref=..."); nil
// when it is not a git repository.
func gitSource(p string) *dfgitutil.GitRef {
	ref, isGit, err := dfgitutil.ParseGitRef(p)
	if err != nil || !isGit || ref == nil || ref.IndistinguishableFromLocal {
		return nil
	}
	return ref
}

var commitRe = regexp.MustCompile(`^[0-9a-f]{7,64}$`)

// gitCheckout clones g into dir/name with the host's git and returns
// the source path to copy (name, or its subdirectory). checksum, when
// given, must be (a prefix of) the commit checked out. The .git
// directory goes unless keepGitDir. An unreachable repository is a clear
// error naming it.
func gitCheckout(ctx context.Context, dir, name string, g *dfgitutil.GitRef, checksum string, keepGitDir bool) (string, error) {
	if g.KeepGitDir != nil {
		keepGitDir = *g.KeepGitDir
	}
	if g.Checksum != "" {
		if checksum != "" && checksum != g.Checksum {
			return "", fmt.Errorf("ADD %s: checksum mismatch %q != %q: %w", g.Remote, checksum, g.Checksum, errdefs.ErrInvalidArgument)
		}
		checksum = g.Checksum
	}
	gitBin, err := exec.LookPath("git")
	if err != nil {
		return "", fmt.Errorf("ADD %s: a git repository needs the git command on berthd's host: %w", g.Remote, errdefs.ErrNotImplemented)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	dst := filepath.Join(dir, name)
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, gitBin, args...)
		// Never ask for credentials (berthd has no terminal), and only
		// network transports: a submodule must not read the host's files
		// (file://, a path) into the image.
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_SSH_COMMAND=ssh -o BatchMode=yes", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir,
			"GIT_ALLOW_PROTOCOL=https:http:ssh:git")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return strings.TrimSpace(out.String()), err
	}
	args := []string{"clone", "--quiet", "--no-checkout", "--", g.Remote, dst}
	if out, err := git(args...); err != nil {
		return "", fmt.Errorf("ADD failed: git clone %s: %s: %w", g.Remote, lastLine(out, err), errdefs.ErrInvalidArgument)
	}
	ref := g.Ref
	if ref == "" {
		ref = "HEAD"
	} else if !commitRe.MatchString(ref) {
		// A branch or tag: the remote's, not a local name.
		if out, err := git("-C", dst, "rev-parse", "--verify", "--quiet", "origin/"+ref+"^{commit}"); err == nil && out != "" {
			ref = out
		} else {
			ref += "^{commit}"
		}
	}
	if out, err := git("-C", dst, "-c", "advice.detachedHead=false", "checkout", "--quiet", ref, "--"); err != nil {
		return "", fmt.Errorf("ADD failed: git checkout %s of %s: %s: %w", g.Ref, g.Remote, lastLine(out, err), errdefs.ErrInvalidArgument)
	}
	head, err := git("-C", dst, "rev-parse", "HEAD")
	if err != nil {
		return "", fmt.Errorf("ADD %s: %s", g.Remote, lastLine(head, err))
	}
	if checksum != "" && !strings.HasPrefix(head, strings.TrimPrefix(checksum, "sha1:")) {
		return "", fmt.Errorf("ADD failed: %s: checksum mismatch: --checksum=%s, checked out commit %s: %w", g.Remote, checksum, head, errdefs.ErrInvalidArgument)
	}
	if g.Submodules == nil || *g.Submodules {
		if out, err := git("-C", dst, "submodule", "update", "--init", "--recursive", "--quiet"); err != nil {
			return "", fmt.Errorf("ADD failed: git submodules of %s: %s: %w", g.Remote, lastLine(out, err), errdefs.ErrInvalidArgument)
		}
	}
	if !keepGitDir {
		if err := os.RemoveAll(filepath.Join(dst, ".git")); err != nil {
			return "", err
		}
	}
	if g.SubDir == "" {
		return name, nil
	}
	sub := path.Clean("/" + g.SubDir)
	if _, err := securejoin.SecureJoin(dst, sub); err != nil {
		return "", err
	}
	return path.Join(name, sub), nil
}

// lastLine is the last line of a git command's output, or its error.
func lastLine(out string, err error) string {
	out = strings.TrimSpace(out)
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = out[i+1:]
	}
	if out == "" {
		return err.Error()
	}
	return out
}
