package pull_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/pull"
	"github.com/berth-dev/berth/image/registry"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/images"
	treg "github.com/berth-dev/berth/internal/testutil/registry"
)

// checkBusybox pulls busybox from host and checks the unpacked tree.
func checkBusybox(t *testing.T, e *env, ref string) pull.Result {
	t.Helper()
	bb := images.Busybox(t)
	res, err := e.pull(ref)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Digest != bb.Top.Digest || res.Config.Digest != bb.Manifest.Config.Digest {
		t.Errorf("manifest %s config %s, want %s %s", res.Manifest.Digest, res.Config.Digest, bb.Top.Digest, bb.Manifest.Config.Digest)
	}
	chains := pull.ChainIDs([]digestT{bb.Layers[0].DiffID})
	if res.ChainID != chains[0] {
		t.Errorf("chain id %s, want %s", res.ChainID, chains[0])
	}
	e.view(res.ChainID, func(root string) {
		fi, err := os.Stat(filepath.Join(root, "bin", "busybox"))
		if err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("bin/busybox: %v %v", fi, err)
		}
	})
	for _, d := range []digestT{bb.Top.Digest, bb.Manifest.Config.Digest, bb.Layers[0].Digest} {
		if !e.blobs()[d] {
			t.Errorf("blob %s missing from the content store", d)
		}
	}
	return res
}

func TestPullBusyboxPlain(t *testing.T) {
	testutil.LeakCheck(t)
	r := startRegistry(t)
	r.Push(t, images.Busybox(t).Layout, "library/busybox:latest")
	e := newEnv(t, registry.Options{})
	ref := r.Host + "/library/busybox:latest"
	res := checkBusybox(t, e, ref)
	if res.Downloaded != images.Busybox(t).Layers[0].Size || res.Existing != 0 {
		t.Errorf("downloaded %d existing %d", res.Downloaded, res.Existing)
	}
	st := e.statuses()
	if st[pull.StatusPullComplete] != 1 || st[pull.StatusPullingFSLayer] != 1 || st[pull.StatusWaiting] != 0 {
		t.Errorf("events: %v", st)
	}

	// Again: a no-op, with no layer events (Docker prints none for an
	// image it has).
	res2, err := e.pull(ref)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Downloaded != 0 || res2.Existing != 1 || res2.ChainID != res.ChainID || len(e.statuses()) != 0 {
		t.Errorf("second pull: %+v, events %v", res2, e.statuses())
	}
	// By digest.
	if _, err := e.pull(r.Host + "/library/busybox@" + res.Manifest.Digest.String()); err != nil {
		t.Fatal(err)
	}
	for _, n := range e.snapshots() {
		if strings.HasPrefix(n, "pull-") {
			t.Errorf("temporary snapshot %q left", n)
		}
	}
	// Unknown tag.
	if _, err := e.pull(r.Host + "/library/busybox:nope"); !errdefs.IsNotFound(err) {
		t.Errorf("unknown tag: %v, want not found", err)
	}
}

func TestPullBasicAuth(t *testing.T) {
	testutil.LeakCheck(t)
	r := startRegistry(t, treg.WithBasicAuth("alice", "s3cret"))
	r.Push(t, images.Busybox(t).Layout, "library/busybox:latest")
	ref := r.Host + "/library/busybox:latest"

	_, err := newEnv(t, registry.Options{}).pull(ref)
	if !errdefs.IsUnauthenticated(err) {
		t.Fatalf("anonymous pull: %v, want unauthenticated", err)
	}
	t.Logf("anonymous: %v", err)
	_, err = newEnv(t, registry.Options{ConfigPath: writeDockerConfig(t, r.Host, "alice", "wrong")}).pull(ref)
	if !errdefs.IsUnauthenticated(err) {
		t.Fatalf("wrong password: %v, want unauthenticated", err)
	}
	checkBusybox(t, newEnv(t, registry.Options{ConfigPath: writeDockerConfig(t, r.Host, "alice", "s3cret")}), ref)
}

func TestPullTokenAuth(t *testing.T) {
	testutil.LeakCheck(t)
	r := startRegistry(t, treg.WithTokenAuth(), treg.WithBasicAuth("bob", "hunter2"))
	r.Push(t, images.Busybox(t).Layout, "library/busybox:latest")
	ref := r.Host + "/library/busybox:latest"

	_, err := newEnv(t, registry.Options{}).pull(ref)
	if !errdefs.IsUnauthenticated(err) {
		t.Fatalf("anonymous pull: %v, want unauthenticated", err)
	}
	t.Logf("anonymous: %v", err)
	checkBusybox(t, newEnv(t, registry.Options{ConfigPath: writeDockerConfig(t, r.Host, "bob", "hunter2")}), ref)
	var pullScope bool
	for _, tr := range r.TokenRequests() {
		if strings.Contains(strings.Join(tr.Scopes, " "), "repository:library/busybox:pull") {
			pullScope = true
		}
	}
	if !pullScope {
		t.Errorf("no token asked for pull on library/busybox: %+v", r.TokenRequests())
	}
}

func TestPullPlatform(t *testing.T) {
	testutil.LeakCheck(t)
	r := startRegistry(t)
	idx := images.BusyboxIndex(t)
	r.Push(t, idx.OCIRef(), "multi/busybox:latest", "--all")
	ref := r.Host + "/multi/busybox:latest"
	e := newEnv(t, registry.Options{})
	for _, tc := range []struct{ platform, arch string }{
		{"linux/amd64", "amd64"}, {"linux/arm64/v8", "arm64"}, {"linux/arm64", "arm64"},
	} {
		res, err := e.pull(ref, func(o *pull.Options) { o.Platform = tc.platform })
		if err != nil {
			t.Fatalf("%s: %v", tc.platform, err)
		}
		var want digestT
		for _, m := range idx.Manifests {
			if m.Platform.Architecture == tc.arch {
				want = m.Digest
			}
		}
		if res.Index == nil || res.Index.Digest != idx.Top.Digest || res.Manifest.Digest != want || res.Platform.Architecture != tc.arch {
			t.Errorf("%s: index %v manifest %s platform %+v, want %s", tc.platform, res.Index, res.Manifest.Digest, res.Platform, want)
		}
		e.view(res.ChainID, func(root string) {
			if _, err := os.Stat(filepath.Join(root, "bin", "busybox")); err != nil {
				t.Error(err)
			}
		})
	}
	_, err := e.pull(ref, func(o *pull.Options) { o.Platform = "linux/s390x" })
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "linux/s390x") || !strings.Contains(err.Error(), "linux/arm64/v8") {
		t.Errorf("unknown platform: %v", err)
	}
	if _, err := e.pull(ref, func(o *pull.Options) { o.Platform = "linux//" }); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad platform: %v", err)
	}
}

func TestPullRetry503(t *testing.T) {
	testutil.LeakCheck(t)
	r := startRegistry(t)
	r.Push(t, images.Busybox(t).Layout, "library/busybox:latest")
	p := newProxy(t, r.URL)
	p.fail503.Store(2)
	e := newEnv(t, registry.Options{})
	checkBusybox(t, e, p.Host()+"/library/busybox:latest")
	if p.fail503.Load() > 0 {
		t.Errorf("the 503s were not served")
	}
	// Without retries the same fails, as unavailable.
	p.fail503.Store(1)
	_, err := newEnv(t, registry.Options{Retries: -1}).pull(p.Host() + "/library/busybox:latest")
	if !errdefs.IsUnavailable(err) {
		t.Errorf("without retries: %v, want unavailable", err)
	}
}

func TestPullResumeAfterDrop(t *testing.T) {
	testutil.LeakCheck(t)
	r := startRegistry(t)
	bb := images.Busybox(t)
	r.Push(t, bb.Layout, "library/busybox:latest")
	p := newProxy(t, r.URL)
	layer := bb.Layers[0].Digest.String()
	cut := bb.Layers[0].Size / 3
	p.blob = func(n int, req *http.Request) proxyAction {
		if strings.HasSuffix(req.URL.Path, layer) && req.Header.Get("Range") == "" {
			return proxyAction{cutAfter: cut}
		}
		return proxyAction{}
	}
	e := newEnv(t, registry.Options{})
	res := checkBusybox(t, e, p.Host()+"/library/busybox:latest")
	ranges := p.rangeHeaders()
	if !strings.Contains(strings.Join(ranges, " "), "bytes=") {
		t.Errorf("no Range request after the drop: %q", ranges)
	}
	if res.Downloaded != bb.Layers[0].Size {
		t.Errorf("downloaded %d bytes, want %d (resumed, not restarted)", res.Downloaded, bb.Layers[0].Size)
	}
}

func TestPullCorruptBlob(t *testing.T) {
	testutil.LeakCheck(t)
	r := startRegistry(t)
	bb := images.Busybox(t)
	r.Push(t, bb.Layout, "library/busybox:latest")
	p := newProxy(t, r.URL)
	layer := bb.Layers[0].Digest.String()
	p.blob = func(n int, req *http.Request) proxyAction {
		if strings.HasSuffix(req.URL.Path, layer) {
			return proxyAction{flipAt: bb.Layers[0].Size / 2}
		}
		return proxyAction{}
	}
	e := newEnv(t, registry.Options{})
	_, err := e.pull(p.Host() + "/library/busybox:latest")
	if err == nil || !strings.Contains(err.Error(), "layer 0") || !strings.Contains(err.Error(), layer) {
		t.Fatalf("corrupt blob: %v, want an error naming layer 0 and %s", err, layer)
	}
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "digest mismatch") {
		t.Errorf("corrupt blob: %v, want a digest mismatch (failed precondition)", err)
	}
	t.Logf("corrupt: %v", err)
	if s := e.snapshots(); len(s) != 0 {
		t.Errorf("snapshots left: %q", s)
	}
	if e.blobs()[bb.Layers[0].Digest] {
		t.Errorf("corrupt blob is visible")
	}
	// The registry's own copy is fine: pulling directly works.
	p.blob = nil
	checkBusybox(t, e, p.Host()+"/library/busybox:latest")
}
