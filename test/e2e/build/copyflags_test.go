package build_test

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildCopyExcludeParents: COPY --exclude leaves out what its
// patterns name (and a change there keeps the cache); COPY --parents
// keeps the sources' paths, from the context root or a /./ pivot, with
// ** patterns.
func TestBuildCopyExcludeParents(t *testing.T) {
	d := withBusybox(t)
	dir := writeContext(t, map[string]string{
		"Dockerfile": `FROM busybox
COPY --exclude=*.md --exclude=sub/deep --exclude=Dockerfile . /all/
COPY --exclude=**/*.md sub /sub/
COPY --exclude=b.md *.md *.txt /glob/
COPY --parents sub/c.txt sub/deep/e.txt /p/
COPY --parents ./sub/./deep/e.txt /q/
COPY --parents **/*.md /r/
RUN cd / && find all sub glob p q r -type f | sort > /listing
`,
		"a.txt":          "a",
		"b.md":           "b",
		"c.md":           "c",
		"sub/c.txt":      "c",
		"sub/d.md":       "d",
		"sub/deep/e.txt": "e",
	})
	out, code := berthCLI(t, d, nil, "build", "-t", "copyflags", dir)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, out)
	}
	got := d.Must(t, "run", "--rm", "copyflags", "cat", "/listing")
	wantList := "all/a.txt\nall/sub/c.txt\nall/sub/d.md\n" +
		"glob/a.txt\nglob/c.md\n" +
		"p/sub/c.txt\np/sub/deep/e.txt\n" +
		"q/deep/e.txt\n" +
		"r/b.md\nr/c.md\nr/sub/d.md\n" +
		"sub/c.txt\nsub/deep/e.txt\n"
	if got != wantList {
		t.Errorf("copied files:\n%s\nwant:\n%s", got, wantList)
	}
	// A file only the first COPY excludes changes: that step stays
	// cached, the --parents one reading it runs again.
	writeContextFile(t, dir, "b.md", "changed")
	out, code = berthCLI(t, d, nil, "build", "--progress", "plain", dir)
	if code != 0 {
		t.Fatalf("rebuild: exit %d\n%s", code, out)
	}
	steps := strings.Split(out, "Step ")
	for i, s := range steps {
		cached := strings.Contains(s, "CACHED")
		switch {
		case strings.HasPrefix(s, "2/8") || strings.HasPrefix(s, "3/8") || strings.HasPrefix(s, "4/8") || strings.HasPrefix(s, "5/8") || strings.HasPrefix(s, "6/8"):
			if !cached {
				t.Errorf("step %d should be cached:\n%s", i, s)
			}
		case strings.HasPrefix(s, "7/8"):
			if cached {
				t.Errorf("COPY --parents **/*.md should run again:\n%s", s)
			}
		}
	}
}

// TestBuildAddChecksumAndGit: ADD --checksum verifies a download (and is
// refused for local files, as BuildKit); ADD of a git repository clones
// it (branch, commit checksum, --keep-git-dir), an unreachable one is a
// clear error; RUN --device is refused by name.
func TestBuildAddChecksumAndGit(t *testing.T) {
	d := withBusybox(t)
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed on the host for ADD of git repositories")
	}
	// A bare repository served over git's dumb HTTP protocol, and a
	// file, on loopback.
	work := t.TempDir()
	gitIn := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+work)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	src := filepath.Join(work, "src")
	if err := os.MkdirAll(filepath.Join(src, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	gitIn(src, "init", "-q")
	writeContextFile(t, src, "hello.txt", "from git\n")
	writeContextFile(t, src, "docs/guide.txt", "guide\n")
	gitIn(src, "add", ".")
	gitIn(src, "commit", "-q", "-m", "first")
	gitIn(src, "branch", "-M", "main")
	commit := gitIn(src, "rev-parse", "HEAD")
	gitIn(work, "clone", "-q", "--bare", src, filepath.Join(work, "serve", "repo.git"))
	gitIn(filepath.Join(work, "serve", "repo.git"), "update-server-info")
	// A repository whose submodule is a path on the host: ADD must not
	// read the host's files through it.
	evil := filepath.Join(work, "evil")
	if err := os.MkdirAll(evil, 0o755); err != nil {
		t.Fatal(err)
	}
	gitIn(evil, "init", "-q")
	gitIn(evil, "-c", "protocol.file.allow=always", "submodule", "--quiet", "add", src, "host")
	gitIn(evil, "commit", "-q", "-m", "submodule")
	gitIn(work, "clone", "-q", "--bare", evil, filepath.Join(work, "serve", "evil.git"))
	gitIn(filepath.Join(work, "serve", "evil.git"), "update-server-info")
	const payload = "checked payload\n"
	sum := sha256.Sum256([]byte(payload))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	files := http.FileServer(http.Dir(filepath.Join(work, "serve")))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/payload.txt" {
			w.Write([]byte(payload))
			return
		}
		files.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + l.Addr().String()

	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM busybox\n" +
			"ADD --checksum=sha256:" + hex.EncodeToString(sum[:]) + " " + base + "/payload.txt /payload.txt\n" +
			"ADD " + base + "/repo.git /repo/\n" +
			"ADD --keep-git-dir=true " + base + "/repo.git#main /withgit/\n" +
			"ADD --checksum=" + commit + " " + base + "/repo.git#main:docs /docs/\n" +
			"RUN cat /payload.txt /repo/hello.txt /docs/guide.txt && ls -a /repo | grep -c '^.git$' > /repo-git; ls -d /withgit/.git > /withgit-git\n",
	})
	out, code := docker(t, d, "build", "-t", "addgit", dir)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "checked payload\nfrom git\nguide\n") {
		t.Errorf("RUN did not see the added files:\n%s", out)
	}
	if got := d.Must(t, "run", "--rm", "addgit", "cat", "/repo-git", "/withgit-git"); got != "0\n/withgit/.git\n" {
		t.Errorf(".git kept only with --keep-git-dir: %q", got)
	}

	for _, c := range []struct{ line, want string }{
		{"ADD --checksum=sha256:" + strings.Repeat("0", 64) + " " + base + "/payload.txt /p", "digest mismatch"},
		{"ADD --checksum=sha256:" + hex.EncodeToString(sum[:]) + " local.txt /p", "checksum requires HTTP(S) or Git sources"},
		{"ADD --checksum=0123456789abcdef " + base + "/repo.git /r", "checksum mismatch"},
		{"ADD https://127.0.0.1:1/nothing.git /r", "git clone https://127.0.0.1:1/nothing.git"},
		{"ADD " + base + "/repo.git#no-such-branch /r", "git checkout no-such-branch"},
		{"ADD " + base + "/evil.git /r", "git submodules of " + base + "/evil.git"},
		{"COPY " + base + "/repo.git /r", "source can't be a URL or a git repository for COPY"},
		{"RUN --device=vendor.com/gpu=all true", "RUN --device=vendor.com/gpu=all is not supported"},
	} {
		bad := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\n" + c.line + "\n", "local.txt": "x"})
		out, code := docker(t, d, "build", bad)
		if code == 0 || !strings.Contains(out, c.want) || !strings.Contains(out, "Dockerfile:2") {
			t.Errorf("%s: exit %d, want %q:\n%s", c.line, code, c.want, out)
		}
	}
}
