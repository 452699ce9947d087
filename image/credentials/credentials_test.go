package credentials_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/credentials"
	"github.com/berth-dev/berth/internal/testutil/registry"
)

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return m
}

func writeFile(t *testing.T, path, s string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", "/some/dir")
	if got := credentials.DefaultPath(); got != "/some/dir/config.json" {
		t.Errorf("with DOCKER_CONFIG: %s", got)
	}
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv("HOME", "/home/u")
	if got := credentials.DefaultPath(); got != "/home/u/.docker/config.json" {
		t.Errorf("without DOCKER_CONFIG: %s", got)
	}
	if got := credentials.NewStore("").Path(); got != "/home/u/.docker/config.json" {
		t.Errorf("NewStore(\"\").Path() = %s", got)
	}
}

func TestServerKey(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io":                   credentials.DockerHubKey,
		"index.docker.io":             credentials.DockerHubKey,
		"registry-1.docker.io":        credentials.DockerHubKey,
		"https://index.docker.io/v1/": credentials.DockerHubKey,
		"127.0.0.1:5000":              "127.0.0.1:5000",
		"https://ghcr.io/v2/":         "ghcr.io",
		"http://localhost:5000":       "localhost:5000",
	} {
		if got := credentials.ServerKey(in); got != want {
			t.Errorf("ServerKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFile reads and writes "auths" in the file, keeping keys it does not
// own, with mode 0600 and no temp files left.
func TestFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	writeFile(t, path, `{
	"auths": {
		"https://index.docker.io/v1/": {"auth": "aHViOmh1YnBhc3M="},
		"http://legacy.example:5000/v1/": {"username": "leg", "password": "acy"},
		"tok.example": {"identitytoken": "refresh-me"}
	},
	"HttpHeaders": {"User-Agent": "x"},
	"currentContext": "default"
}`, 0o644)
	s := credentials.NewStore(path)

	for host, want := range map[string]credentials.Auth{
		"docker.io":           {Username: "hub", Password: "hubpass"},
		"index.docker.io":     {Username: "hub", Password: "hubpass"},
		"legacy.example:5000": {Username: "leg", Password: "acy"},
		"tok.example":         {IdentityToken: "refresh-me"},
		"127.0.0.1:5000":      {},
	} {
		got, err := s.Get(ctx, host)
		if err != nil || got != want {
			t.Errorf("Get(%s) = %+v, %v; want %+v", host, got, err, want)
		}
	}

	if err := s.Put(ctx, "127.0.0.1:5000", credentials.Auth{Username: "alice", Password: "s3:cret"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, "127.0.0.1:5000"); got != (credentials.Auth{Username: "alice", Password: "s3:cret"}) {
		t.Errorf("after Put: %+v", got)
	}
	m := readJSON(t, path)
	if m["currentContext"] != "default" || m["HttpHeaders"] == nil {
		t.Errorf("unknown keys lost: %v", m)
	}
	auths := m["auths"].(map[string]any)
	if e := auths["127.0.0.1:5000"].(map[string]any); e["auth"] != "YWxpY2U6czM6Y3JldA==" || len(e) != 1 {
		t.Errorf("stored entry %v", e)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}

	// Putting under another spelling replaces the legacy key.
	if err := s.Put(ctx, "legacy.example:5000", credentials.Auth{Username: "new", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	auths = readJSON(t, path)["auths"].(map[string]any)
	if _, ok := auths["http://legacy.example:5000/v1/"]; ok || auths["legacy.example:5000"] == nil {
		t.Errorf("legacy key not replaced: %v", auths)
	}

	if err := s.Erase(ctx, "docker.io"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(ctx, "docker.io"); !got.IsZero() {
		t.Errorf("after Erase: %+v", got)
	}
	err = s.Logout(ctx, "docker.io")
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "Not logged in to docker.io") {
		t.Errorf("second Logout: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %v", entries)
	}

	// A missing file is empty; Put creates the directory.
	s2 := credentials.NewStore(filepath.Join(dir, "new", "config.json"))
	if a, err := s2.Get(ctx, "x.example"); err != nil || !a.IsZero() {
		t.Errorf("missing file: %+v, %v", a, err)
	}
	if err := s2.Put(ctx, "x.example", credentials.Auth{Username: "u", Password: "p"}); err != nil {
		t.Fatal(err)
	}

	// A broken file is an invalid argument, not silently empty.
	writeFile(t, path, "{not json", 0o600)
	if _, err := s.Get(ctx, "x"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("broken file: %v", err)
	}
}

// fakeHelper writes docker-credential-<name> into dir: a shell script
// keeping credentials as files under dir/<name>-store, answering get,
// store, erase and list as Docker's helpers do, and logging each call.
func fakeHelper(t *testing.T, dir, helperName string) string {
	t.Helper()
	storeDir := filepath.Join(dir, helperName+"-store")
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	script := `#!/bin/sh
set -eu
store=` + storeDir + `
echo "$1" >> "$store/calls"
key() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
case "$1" in
get)
	server=$(cat)
	f="$store/$(key "$server")"
	if [ ! -f "$f" ]; then echo "credentials not found in native keychain"; exit 1; fi
	cat "$f" ;;
store)
	in=$(cat)
	server=$(printf '%s' "$in" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p')
	printf '%s' "$in" > "$store/$(key "$server")" ;;
erase)
	server=$(cat)
	f="$store/$(key "$server")"
	if [ ! -f "$f" ]; then echo "credentials not found in native keychain"; exit 1; fi
	rm "$f" ;;
*)
	echo "unknown action $1" >&2; exit 2 ;;
esac
`
	writeFile(t, filepath.Join(dir, "docker-credential-"+helperName), script, 0o755)
	return storeDir
}

func calls(t *testing.T, storeDir string) string {
	b, _ := os.ReadFile(filepath.Join(storeDir, "calls"))
	return strings.Join(strings.Fields(string(b)), ",")
}

func TestCredsStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	hs := fakeHelper(t, dir, "fake")
	path := filepath.Join(dir, "config.json")
	writeFile(t, path, `{"credsStore": "fake"}`, 0o600)
	s := credentials.NewStore(path, credentials.WithHelperDir(dir))

	if a, err := s.Get(ctx, "127.0.0.1:5000"); err != nil || !a.IsZero() {
		t.Fatalf("Get before store: %+v, %v", a, err)
	}
	if err := s.Put(ctx, "127.0.0.1:5000", credentials.Auth{Username: "alice", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "docker.io", credentials.Auth{IdentityToken: "idtok"}); err != nil {
		t.Fatal(err)
	}
	// The file has empty entries and no secrets; the helper has them.
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "pw") || strings.Contains(string(b), "idtok") {
		t.Errorf("secret in the file: %s", b)
	}
	auths := readJSON(t, path)["auths"].(map[string]any)
	if len(auths["127.0.0.1:5000"].(map[string]any)) != 0 || auths[credentials.DockerHubKey] == nil {
		t.Errorf("auths %v", auths)
	}
	if a, err := s.Get(ctx, "127.0.0.1:5000"); err != nil || a != (credentials.Auth{Username: "alice", Password: "pw"}) {
		t.Errorf("Get: %+v, %v", a, err)
	}
	if a, err := s.Get(ctx, "index.docker.io"); err != nil || a != (credentials.Auth{IdentityToken: "idtok"}) {
		t.Errorf("Get hub: %+v, %v", a, err)
	}
	// The helper was asked for Docker Hub under Docker's key.
	if _, err := os.Stat(filepath.Join(hs, "68747470733a2f2f696e6465782e646f636b65722e696f2f76312f")); err != nil {
		t.Errorf("hub key in helper: %v", err)
	}

	if err := s.Logout(ctx, "127.0.0.1:5000"); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Get(ctx, "127.0.0.1:5000"); err != nil || !a.IsZero() {
		t.Errorf("after logout: %+v, %v", a, err)
	}
	if _, ok := readJSON(t, path)["auths"].(map[string]any)["127.0.0.1:5000"]; ok {
		t.Error("file entry kept after logout")
	}
	if err := s.Logout(ctx, "127.0.0.1:5000"); !errdefs.IsNotFound(err) {
		t.Errorf("second logout: %v", err)
	}
	if got := calls(t, hs); !strings.Contains(got, "store,store") || !strings.Contains(got, "erase") {
		t.Errorf("helper calls %s", got)
	}

	// A helper that is missing is an error naming it, not anonymous access.
	writeFile(t, path, `{"credsStore": "absent"}`, 0o600)
	if _, err := s.Get(ctx, "x.example"); err == nil || !strings.Contains(err.Error(), "docker-credential-absent") {
		t.Errorf("missing helper: %v", err)
	}
}

func TestCredHelpers(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	hs := fakeHelper(t, dir, "per")
	path := filepath.Join(dir, "config.json")
	writeFile(t, path, `{"credHelpers": {"ghcr.io": "per"}, "auths": {"other.example": {"auth": "bzpwdw=="}}}`, 0o600)
	s := credentials.NewStore(path, credentials.WithHelperDir(dir))
	if err := s.Put(ctx, "ghcr.io", credentials.Auth{Username: "gh", Password: "tok"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := readJSON(t, path)["auths"].(map[string]any)["ghcr.io"]; ok {
		t.Error("per-registry helper wrote a file entry")
	}
	if a, _ := s.Get(ctx, "ghcr.io"); a != (credentials.Auth{Username: "gh", Password: "tok"}) {
		t.Errorf("ghcr.io: %+v", a)
	}
	if a, _ := s.Get(ctx, "other.example"); a != (credentials.Auth{Username: "o", Password: "pw"}) {
		t.Errorf("other.example: %+v", a)
	}
	if err := s.Logout(ctx, "ghcr.io"); err != nil {
		t.Fatal(err)
	}
	if got := calls(t, hs); got != "store,get,get,erase" {
		t.Errorf("helper calls %s", got)
	}
}

func TestKeychain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	writeFile(t, path, `{"auths": {"127.0.0.1:5000": {"auth": "YWxpY2U6cHc="}, "https://index.docker.io/v1/": {"identitytoken": "it"}}}`, 0o600)
	kc := credentials.NewStore(path).Keychain()
	for ref, want := range map[string]authn.AuthConfig{
		"127.0.0.1:5000/x/y:1": {Username: "alice", Password: "pw"},
		"busybox":              {IdentityToken: "it"},
		"127.0.0.1:5001/x":     {},
	} {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(r.Context())
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if *got != want {
			t.Errorf("%s: %+v, want %+v", ref, *got, want)
		}
	}
}

func TestLoginBasic(t *testing.T) {
	r := registry.Start(t, registry.WithBasicAuth("alice", "s3cret"))
	testLogin(t, r)
}

func TestLoginToken(t *testing.T) {
	r := registry.Start(t, registry.WithTokenAuth(), registry.WithBasicAuth("bob", "t0ken"))
	testLogin(t, r)
	var refused bool
	for _, req := range r.TokenRequests() {
		refused = refused || !req.Granted
	}
	if !refused {
		t.Errorf("the bad password never reached the token server: %+v", r.TokenRequests())
	}
}

func testLogin(t *testing.T, r *registry.Registry) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "config.json")
	s := credentials.NewStore(path)

	err := s.Login(ctx, r.Host, r.Username, "wrong")
	if !errdefs.IsUnauthenticated(err) {
		t.Fatalf("bad password: %v", err)
	}
	t.Logf("bad password: %v", err)
	if _, statErr := os.Stat(path); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("bad password stored something: %v", statErr)
	}
	if err := s.Login(ctx, r.Host, r.Username, r.Password); err != nil {
		t.Fatalf("good password: %v", err)
	}
	if a, err := s.Get(ctx, r.Host); err != nil || a != (credentials.Auth{Username: r.Username, Password: r.Password}) {
		t.Errorf("stored %+v, %v", a, err)
	}
	if err := s.Logout(ctx, r.Host); err != nil {
		t.Fatal(err)
	}
	if err := s.Logout(ctx, r.Host); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "Not logged in to "+r.Host) {
		t.Errorf("logout twice: %v", err)
	}
}

func TestLoginUnreachable(t *testing.T) {
	s := credentials.NewStore(filepath.Join(t.TempDir(), "config.json"))
	err := s.Login(context.Background(), "127.0.0.1:1", "u", "p")
	if !errdefs.IsUnavailable(err) {
		t.Errorf("unreachable: %v", err)
	}
	if err := s.Login(context.Background(), "127.0.0.1:1", "u", ""); !errdefs.IsInvalidArgument(err) {
		t.Errorf("empty password: %v", err)
	}
}
