package registry_test

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/internal/testutil/registry"
)

type inspected struct {
	Digest       string
	Architecture string
	Layers       []string
}

func inspect(t *testing.T, r *registry.Registry, repoTag string, flags ...string) inspected {
	t.Helper()
	args := append([]string{"inspect"}, flags...)
	out := registry.Skopeo(t, append(args, r.Ref(repoTag))...)
	var got inspected
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPlain(t *testing.T) {
	testutil.LeakCheck(t)
	r := registry.Start(t)
	if !strings.HasPrefix(r.Host, "127.0.0.1:") || r.URL != "http://"+r.Host {
		t.Fatalf("host %q url %q", r.Host, r.URL)
	}
	bb := images.Busybox(t)
	r.Push(t, bb.Layout, "library/busybox:latest")
	r.Push(t, bb.Archive, "archive/busybox:1")
	r.Push(t, images.BusyboxIndex(t).OCIRef(), "multi/busybox:latest", "--all")

	got := inspect(t, r, "library/busybox:latest", "--tls-verify=false")
	if got.Digest != bb.Top.Digest.String() || len(got.Layers) != 1 || got.Layers[0] != bb.Layers[0].Digest.String() {
		t.Errorf("inspect: %+v, want manifest %s", got, bb.Top.Digest)
	}
	if d := r.ManifestDigest(t, "library/busybox", "latest"); d != bb.Top.Digest.String() {
		t.Errorf("ManifestDigest = %s, want %s", d, bb.Top.Digest)
	}
	idx := images.BusyboxIndex(t)
	if d := r.ManifestDigest(t, "multi/busybox", "latest"); d != idx.Top.Digest.String() {
		t.Errorf("index digest = %s, want %s", d, idx.Top.Digest)
	}
	if got := inspect(t, r, "multi/busybox:latest", "--tls-verify=false"); got.Architecture != "amd64" {
		t.Errorf("index inspect: %+v", got)
	}
	cat := r.Catalog(t)
	for _, want := range []string{"archive/busybox", "library/busybox", "multi/busybox"} {
		if !slices.Contains(cat, want) {
			t.Errorf("catalog %v lacks %s", cat, want)
		}
	}
	// And back out of the registry.
	registry.Skopeo(t, "copy", "--quiet", "--src-tls-verify=false", r.Ref("library/busybox:latest"), "oci:"+t.TempDir()+":x")
}

func TestGeneratedImage(t *testing.T) {
	r := registry.Start(t)
	img := images.Generated(t, images.Spec{Seed: 11, Layers: 6, Size: 2 << 20})
	r.Push(t, img.OCIRef(), "gen/small:v1")
	got := inspect(t, r, "gen/small:v1", "--tls-verify=false")
	if got.Digest != img.Top.Digest.String() || len(got.Layers) != 6 {
		t.Fatalf("inspect %+v, want %s with 6 layers (gzip, zstd and uncompressed kept as they are)", got, img.Top.Digest)
	}
}

func TestBasicAuth(t *testing.T) {
	r := registry.Start(t, registry.WithBasicAuth("alice", "s3cret"))
	resp, err := http.Get(r.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("anonymous /v2/: %s %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	bb := images.Busybox(t)
	r.Push(t, bb.Layout, "private/busybox:latest")
	if got := inspect(t, r, "private/busybox:latest", "--tls-verify=false", "--creds=alice:s3cret"); got.Digest != bb.Top.Digest.String() {
		t.Errorf("inspect with credentials: %+v", got)
	}
	for _, flags := range [][]string{{"--tls-verify=false"}, {"--tls-verify=false", "--creds=alice:wrong"}} {
		if _, err := registry.SkopeoErr(t, append(append([]string{"inspect"}, flags...), r.Ref("private/busybox:latest"))...); err == nil {
			t.Errorf("inspect %v succeeded", flags)
		}
	}
	if cat := r.Catalog(t); !slices.Contains(cat, "private/busybox") {
		t.Errorf("catalog %v", cat)
	}
}

func TestTokenAuth(t *testing.T) {
	r := registry.Start(t, registry.WithTokenAuth(), registry.WithBasicAuth("bob", "t0ken"))
	resp, err := http.Get(r.URL + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ch := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `realm="`+r.TokenRealm+`"`) {
		t.Fatalf("anonymous /v2/: %s %q", resp.Status, ch)
	}
	bb := images.Busybox(t)
	r.Push(t, bb.Layout, "team/busybox:latest")
	if got := inspect(t, r, "team/busybox:latest", "--tls-verify=false", "--creds=bob:t0ken"); got.Digest != bb.Top.Digest.String() {
		t.Errorf("inspect with credentials: %+v", got)
	}
	for _, flags := range [][]string{{"--tls-verify=false"}, {"--tls-verify=false", "--creds=bob:nope"}} {
		if _, err := registry.SkopeoErr(t, append(append([]string{"inspect"}, flags...), r.Ref("team/busybox:latest"))...); err == nil {
			t.Errorf("inspect %v succeeded", flags)
		}
	}
	var granted, refused int
	for _, req := range r.TokenRequests() {
		if req.Granted {
			granted++
		} else {
			refused++
		}
	}
	if granted == 0 || refused == 0 {
		t.Errorf("token requests: %+v", r.TokenRequests())
	}
	if cat := r.Catalog(t); !slices.Contains(cat, "team/busybox") {
		t.Errorf("catalog %v", cat)
	}
	if d := r.ManifestDigest(t, "team/busybox", "latest"); d != bb.Top.Digest.String() {
		t.Errorf("ManifestDigest %s", d)
	}
}

func TestAnonymousTokenAuth(t *testing.T) {
	r := registry.Start(t, registry.WithTokenAuth())
	bb := images.Busybox(t)
	r.Push(t, bb.Archive, "anon/busybox:latest")
	if got := inspect(t, r, "anon/busybox:latest", "--tls-verify=false"); len(got.Layers) != 1 {
		t.Errorf("inspect: %+v", got)
	}
	if len(r.TokenRequests()) == 0 {
		t.Error("no token requests")
	}
}

func TestTLS(t *testing.T) {
	r := registry.Start(t, registry.WithTLS(), registry.WithBasicAuth("carol", "pw"))
	if !strings.HasPrefix(r.URL, "https://") || r.CACert == "" {
		t.Fatalf("url %q ca %q", r.URL, r.CACert)
	}
	bb := images.Busybox(t)
	r.Push(t, bb.Layout, "tls/busybox:latest")
	if d := r.ManifestDigest(t, "tls/busybox", "latest"); d != bb.Top.Digest.String() {
		t.Errorf("ManifestDigest over TLS: %s", d)
	}
	// skopeo trusts the certificate from a cert dir too.
	dir := t.TempDir()
	registry.Skopeo(t, "copy", "--quiet", "--src-creds=carol:pw", "--src-cert-dir="+certDir(t, r, dir), r.Ref("tls/busybox:latest"), "dir:"+t.TempDir())
}

func certDir(t *testing.T, r *registry.Registry, dir string) string {
	t.Helper()
	registry.CopyFile(t, r.CACert, dir+"/ca.crt")
	return dir
}

func TestStopLeavesNoProcess(t *testing.T) {
	testutil.LeakCheck(t)
	r := registry.Start(t, registry.WithTokenAuth())
	pid, host := r.PID(), r.Host
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("pid %d after Stop: %v", pid, err)
	}
	if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections", host)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}
