package build_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/testutil/berthd"
)

// TestBuildSecrets: berth build --secret reaches RUN --mount=type=secret
// (as a file with its mode and owner, or as a variable), and nowhere
// else: not the image's layers or config, not the daemon's disk; a new
// secret value reuses the cache, as BuildKit.
func TestBuildSecrets(t *testing.T) {
	d := withBusybox(t)
	const (
		fileSecret = "file-secret-4f1c9e0a7b"
		envSecret  = "env-secret-93d2b7c1e5"
	)
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	dir := writeContext(t, map[string]string{
		"Dockerfile": `FROM busybox
RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -d' ' -f1 > /tok-sum && stat -c '%a %u %g' /run/secrets/tok > /tok-perm
RUN --mount=type=secret,id=tok,target=/etc/app/tok,mode=0440,uid=1000,gid=1001 stat -c '%a %u %g' /etc/app/tok > /tok-perm2 && sha256sum /etc/app/tok | cut -d' ' -f1 > /tok-sum2
RUN --mount=type=secret,id=envtok,env=TOKEN printf %s "$TOKEN" | sha256sum | cut -d' ' -f1 > /env-sum && (ls /run/secrets 2>&1 || true) > /env-files
RUN --mount=type=secret,id=absent (test -e /run/secrets/absent && echo present || echo absent) > /absent
RUN (ls -d /run/secrets /etc/app/tok 2>&1 || true) > /after
`,
	})
	secretFile := filepath.Join(t.TempDir(), "tok")
	if err := os.WriteFile(secretFile, []byte(fileSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_TEST_TOKEN", envSecret)
	out, code := berthCLI(t, d, nil, "build", "--progress", "plain", "-t", "sec:1",
		"--secret", "id=tok,src="+secretFile, "--secret", "id=envtok,env=BERTH_TEST_TOKEN", dir)
	if code != 0 {
		t.Fatalf("berth build --secret: exit %d\n%s", code, out)
	}
	if strings.Contains(out, fileSecret) || strings.Contains(out, envSecret) {
		t.Errorf("a secret is in the build's output:\n%s", out)
	}
	got := d.Must(t, "run", "--rm", "sec:1", "cat", "/tok-sum", "/tok-perm", "/tok-perm2", "/tok-sum2", "/env-sum", "/env-files", "/absent", "/after")
	want := sum(fileSecret) + "\n400 0 0\n440 1000 1001\n" + sum(fileSecret) + "\n" + sum(envSecret) + "\n" +
		"ls: /run/secrets: No such file or directory\nabsent\n" +
		"ls: /run/secrets: No such file or directory\nls: /etc/app/tok: No such file or directory\n"
	if got != want {
		t.Errorf("what RUN saw:\n%s\nwant:\n%s", got, want)
	}

	// Nothing of the secrets in the saved image (layers and config).
	tarPath := filepath.Join(t.TempDir(), "sec.tar")
	d.Must(t, "save", "-o", tarPath, "sec:1")
	for name, content := range savedFiles(t, tarPath) {
		if bytes.Contains(content, []byte(fileSecret)) || bytes.Contains(content, []byte(envSecret)) {
			t.Errorf("a secret is in the saved image's %s", name)
		}
	}
	hist := d.Must(t, "history", "--no-trunc", "sec:1")
	if strings.Contains(hist, fileSecret) || strings.Contains(hist, envSecret) {
		t.Errorf("a secret is in the history:\n%s", hist)
	}
	// Nor anywhere on the daemon's disk (its data and exec roots, its
	// log): the secrets lived on a tmpfs that is gone.
	for _, root := range []string{d.DataRoot, d.ExecRoot, d.LogPath} {
		if p := fileContaining(t, root, fileSecret, envSecret); p != "" {
			t.Errorf("a secret stayed on the daemon's disk: %s", p)
		}
	}

	// New secret values: every step still comes from the cache.
	if err := os.WriteFile(secretFile, []byte("another-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_TEST_TOKEN", "another-env-value")
	out, code = berthCLI(t, d, nil, "build", "--progress", "plain", "-t", "sec:2",
		"--secret", "id=tok,src="+secretFile, "--secret", "id=envtok,env=BERTH_TEST_TOKEN", dir)
	if code != 0 || strings.Count(out, "CACHED") != 5 {
		t.Errorf("changed secrets: exit %d, want the five RUN steps cached:\n%s", code, out)
	}
	if a, b := inspect(t, d, "sec:1").ID, inspect(t, d, "sec:2").ID; a != b {
		t.Errorf("changed secrets made another image: %s, %s", a, b)
	}

	// The secret's source defaults as buildx's: a variable named as the
	// id, else the file of that name; type=env names the variable by id.
	one := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN --mount=type=secret,id=BERTH_TEST_TOKEN,required cat /run/secrets/BERTH_TEST_TOKEN > /v\n"})
	out, code = berthCLI(t, d, nil, "build", "-q", "--no-cache", "-t", "sec:3", "--secret", "id=BERTH_TEST_TOKEN", one)
	if code != 0 {
		t.Fatalf("--secret id=VAR: exit %d\n%s", code, out)
	}
	if got := d.Must(t, "run", "--rm", "sec:3", "cat", "/v"); got != "another-env-value" {
		t.Errorf("--secret id=VAR: %q", got)
	}
	out, code = berthCLI(t, d, nil, "build", "-q", "--no-cache", "-t", "sec:4", "--secret", "type=env,id=BERTH_TEST_TOKEN", one)
	if code != 0 {
		t.Fatalf("--secret type=env: exit %d\n%s", code, out)
	}
}

// TestBuildSecretErrors: a required secret that is missing, a bad
// --secret, an ssh mount, and the docker CLI (which cannot send secrets).
func TestBuildSecretErrors(t *testing.T) {
	d := withBusybox(t)
	required := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN --mount=type=secret,id=needed,required cat /run/secrets/needed\n"})
	for _, run := range []func() (string, int){
		func() (string, int) { return berthCLI(t, d, nil, "build", required) },
		func() (string, int) { return docker(t, d, "build", required) },
	} {
		out, code := run()
		if code == 0 || !strings.Contains(out, "Dockerfile:2") || !strings.Contains(out, "secret needed was not provided") {
			t.Errorf("missing required secret: exit %d\n%s", code, out)
		}
	}
	// An optional one the docker CLI cannot send mounts nothing, as
	// BuildKit.
	optional := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN --mount=type=secret,id=maybe (cat /run/secrets/maybe 2>/dev/null || echo none) > /maybe\n"})
	out, code := docker(t, d, "build", "-t", "sec:opt", optional)
	if code != 0 {
		t.Fatalf("optional secret with docker build: exit %d\n%s", code, out)
	}
	if got := d.Must(t, "run", "--rm", "sec:opt", "cat", "/maybe"); got != "none\n" {
		t.Errorf("optional secret: %q", got)
	}

	missing := filepath.Join(t.TempDir(), "nope")
	for _, c := range []struct{ arg, want string }{
		{"id=x,src=" + missing, "--secret id=x: stat " + missing},
		{"src=/etc/hostname", "the id is missing"},
		{"id=x,bogus=1", `unexpected key "bogus"`},
		{"id=x,type=ssh", `unsupported secret type "ssh"`},
		{"id=x,env=BERTH_TEST_UNSET_VARIABLE", "environment variable BERTH_TEST_UNSET_VARIABLE is not set"},
	} {
		out, code := berthCLI(t, d, nil, "build", "--secret", c.arg, optional)
		if code != 125 || !strings.Contains(out, c.want) {
			t.Errorf("--secret %s: exit %d, want 125 and %q:\n%s", c.arg, code, c.want, out)
		}
	}
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, make([]byte, 500*1024+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := berthCLI(t, d, nil, "build", "--secret", "id=big,src="+big, optional); code != 125 || !strings.Contains(out, "too big") {
		t.Errorf("a secret over 500KiB: exit %d\n%s", code, out)
	}

	ssh := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\nRUN --mount=type=ssh true\n"})
	if out, code := docker(t, d, "build", ssh); code == 0 || !strings.Contains(out, "RUN --mount=type=ssh is not supported") {
		t.Errorf("ssh mount: exit %d\n%s", code, out)
	}
	if out, code := berthCLI(t, d, nil, "build", "--ssh", "default", ssh); code != 125 || !strings.Contains(out, "--ssh is not supported") {
		t.Errorf("--ssh: exit %d\n%s", code, out)
	}
}

// savedFiles are the files of a saved image archive, with its gzip
// layers uncompressed and their entries' contents concatenated.
func savedFiles(t *testing.T, archive string) map[string][]byte {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
			if u, err := io.ReadAll(zr); err == nil {
				b = u
			}
		}
		out[hdr.Name] = b
	}
	if len(out) == 0 {
		t.Fatal("empty saved image")
	}
	return out
}

// fileContaining is the first regular file under root (a file or a
// directory) that contains one of the strings, "" when none does.
func fileContaining(t *testing.T, root string, needles ...string) string {
	t.Helper()
	found := ""
	_ = filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || found != "" || !e.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				found = p
			}
		}
		return nil
	})
	return found
}

// TestBuildSecretsOnlyToBerthd: berth build --secret refuses to send
// secrets to another engine, which would take them for build context.
func TestBuildSecretsOnlyToBerthd(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "other.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	built := false
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			w.Header().Set("Api-Version", "1.43")
			w.Write([]byte("OK"))
		case strings.HasSuffix(r.URL.Path, "/version"):
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"Platform":{"Name":"Docker Engine - Community"},"Version":"24.0.7","ApiVersion":"1.43","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}`))
		case strings.HasSuffix(r.URL.Path, "/build"):
			mu.Lock()
			built = true
			mu.Unlock()
			http.Error(w, "no", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	bin, err := berthd.Build()
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM busybox\n"})
	out, err := exec.Command(filepath.Join(filepath.Dir(bin), "berth"), "-H", "unix://"+sock, "build", "--secret", "id=s,src="+secret, dir).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 125 || !strings.Contains(string(out), `--secret needs berthd: the daemon is "Docker Engine - Community"`) {
		t.Errorf("secret to another engine: %v\n%s", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if built {
		t.Error("the CLI called /build on another engine with secrets")
	}
}
