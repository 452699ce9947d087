package pull_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/registry"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/images"
	treg "github.com/berth-dev/berth/internal/testutil/registry"
)

// rawPushBlob uploads b into repo with a monolithic upload (POST then PUT
// ?digest=), as a minimal distribution client.
func rawPushBlob(t *testing.T, r *treg.Registry, repo string, b []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(b)
	resp, err := r.Client().Post(r.URL+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %s", resp.Status)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse(r.URL)
	u := base.ResolveReference(loc)
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	req, _ := http.NewRequest(http.MethodPut, u.String(), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = r.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload %s: %s %s", d, resp.Status, msg)
	}
	return d
}

// rawPushManifestFails PUTs a manifest that the registry must refuse
// with a message containing want.
func rawPushManifestFails(t *testing.T, r *treg.Registry, repo, tag, mediaType string, b []byte, want string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, r.URL+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(b))
	req.Header.Set("Content-Type", mediaType)
	resp, err := r.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		t.Fatalf("put manifest %s:%s accepted", repo, tag)
	}
	log, _ := os.ReadFile(r.LogPath())
	if !strings.Contains(string(log), want) {
		t.Fatalf("put manifest %s:%s: %s, and the registry log does not say %q", repo, tag, resp.Status, want)
	}
}

// storeManifest writes the manifest b, tagged tag, into the registry's
// filesystem storage as distribution 2.8 lays out an accepted PUT: the
// blob, its revision link and the tag's current and index links.
func storeManifest(t *testing.T, r *treg.Registry, repo, tag string, b []byte) {
	t.Helper()
	d := digest.FromBytes(b)
	v2 := filepath.Join(r.Dir, "storage", "docker", "registry", "v2")
	link := []byte(d.String())
	mf := filepath.Join(v2, "repositories", repo, "_manifests")
	for path, data := range map[string][]byte{
		filepath.Join(v2, "blobs", "sha256", d.Encoded()[:2], d.Encoded(), "data"): b,
		filepath.Join(mf, "revisions", "sha256", d.Encoded(), "link"):              link,
		filepath.Join(mf, "tags", tag, "current", "link"):                          link,
		filepath.Join(mf, "tags", tag, "index", "sha256", d.Encoded(), "link"):     link,
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := r.ManifestDigest(t, repo, tag); got != d.String() {
		t.Fatalf("registry serves %s:%s as %s, want %s", repo, tag, got, d)
	}
}

// foreignLayer is a gzip-compressed layer with one file and its diff id.
func foreignLayer(t *testing.T) (blob []byte, diffID digest.Digest) {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	data := []byte("served from a foreign URL\n")
	for _, h := range []*tar.Header{
		{Name: "foreign/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "foreign/hello.txt", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Write(data)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gb bytes.Buffer
	gw := gzip.NewWriter(&gb)
	gw.Write(tb.Bytes())
	gw.Close()
	return gb.Bytes(), digest.FromBytes(tb.Bytes())
}

// TestPullForeignLayer pulls a Docker schema 2 image whose second layer is
// a foreign layer: the registry does not hold it, its descriptor's urls
// name a server on 127.0.0.1 that does. The pull fetches it from there and
// unpacks it; with that server down the pull fails naming the URLs.
func TestPullForeignLayer(t *testing.T) {
	testutil.LeakCheck(t)
	r := startRegistry(t)
	bb := images.Busybox(t)
	const repo = "foreign/busybox"

	fblob, fdiff := foreignLayer(t)
	fdigest := digest.FromBytes(fblob)
	var foreignGets atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/layers/"+fdigest.Encoded() {
			http.NotFound(w, req)
			return
		}
		foreignGets.Add(1)
		http.ServeContent(w, req, "layer", bb.Config.Created.UTC(), bytes.NewReader(fblob))
	}))
	defer srv.Close()
	// The first URL is not served (404): the puller must go on to the next.
	urls := []string{srv.URL + "/missing/" + fdigest.Encoded(), srv.URL + "/layers/" + fdigest.Encoded()}

	// The busybox layer and a config with both diff ids go into the
	// registry; the foreign layer does not.
	l0 := bb.Manifest.Layers[0]
	l0blob, err := os.ReadFile(bb.BlobPath(l0.Digest))
	if err != nil {
		t.Fatal(err)
	}
	rawPushBlob(t, r, repo, l0blob)
	cfg := bb.Config
	cfg.RootFS.DiffIDs = append(append([]digest.Digest(nil), cfg.RootFS.DiffIDs...), fdiff)
	cfg.History = append(append([]ocispec.History(nil), cfg.History...), ocispec.History{CreatedBy: "foreign layer"})
	cb, _ := json.Marshal(cfg)
	cdigest := rawPushBlob(t, r, repo, cb)
	if bb.Layers[0].Compression != images.Gzip {
		t.Fatalf("busybox fixture layer is %s, not gzip", bb.Layers[0].Compression)
	}
	l0.MediaType = registry.MediaTypeDockerLayer
	man := map[string]any{
		"schemaVersion": 2,
		"mediaType":     registry.MediaTypeDockerManifest,
		"config":        ocispec.Descriptor{MediaType: registry.MediaTypeDockerConfig, Digest: cdigest, Size: int64(len(cb))},
		"layers": []ocispec.Descriptor{l0, {
			MediaType: registry.MediaTypeDockerForeignLayer, Digest: fdigest, Size: int64(len(fblob)), URLs: urls,
		}},
	}
	mb, _ := json.Marshal(man)
	// distribution 2.8 refuses a manifest with foreign URLs unless its
	// config allows them (validation.manifests.urls.allow), and the test
	// registry's does not: a PUT answers "invalid URL on layer".
	rawPushManifestFails(t, r, repo, "latest", registry.MediaTypeDockerManifest, mb, "invalid URL")
	// So the manifest goes into the registry's storage the way an accepted
	// PUT stores it; the registry serves it from there.
	storeManifest(t, r, repo, "latest", mb)
	// The registry indeed does not have the foreign blob.
	resp, err := r.Client().Head(r.URL + "/v2/" + repo + "/blobs/" + fdigest.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("registry answers %s for the foreign blob", resp.Status)
	}

	ref := r.Host + "/" + repo + ":latest"
	e := newEnv(t, registry.Options{})
	res, err := e.pull(ref)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Digest != digest.FromBytes(mb) || len(res.Layers) != 2 || res.Layers[1].MediaType != registry.MediaTypeDockerForeignLayer {
		t.Errorf("result: %+v", res)
	}
	if foreignGets.Load() == 0 {
		t.Error("the foreign URL was never asked")
	}
	if !e.blobs()[fdigest] {
		t.Error("foreign blob not in the content store")
	}
	e.view(res.ChainID, func(root string) {
		b, err := os.ReadFile(filepath.Join(root, "foreign", "hello.txt"))
		if err != nil || string(b) != "served from a foreign URL\n" {
			t.Errorf("foreign/hello.txt: %q %v", b, err)
		}
		if fi, err := os.Stat(filepath.Join(root, "bin", "busybox")); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("bin/busybox: %v %v", fi, err)
		}
	})

	// The URL server down: a fresh store has to fetch the layer and cannot.
	srv.Close()
	e2 := newEnv(t, registry.Options{})
	_, err = e2.pull(ref)
	if err == nil {
		t.Fatal("pull succeeded with the foreign layer's server down")
	}
	for _, u := range urls {
		if !strings.Contains(err.Error(), u) {
			t.Errorf("error does not name %s: %v", u, err)
		}
	}
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "foreign layer") {
		t.Errorf("error: %v", err)
	}
	for _, n := range e2.snapshots() {
		if strings.HasPrefix(n, "pull-") {
			t.Errorf("temporary snapshot %q left", n)
		}
	}
}

// TestPullTLS pulls busybox from a registry served over https with a
// self-signed certificate: with its CA in Options.TLSConfig the pull
// succeeds, without it it fails with a certificate error.
func TestPullTLS(t *testing.T) {
	testutil.LeakCheck(t)
	r := startRegistry(t, treg.WithTLS())
	r.Push(t, images.Busybox(t).Layout, "secure/busybox:latest")
	ref := r.Host + "/secure/busybox:latest"

	pem, err := os.ReadFile(r.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("bad CA certificate")
	}
	e := newEnv(t, registry.Options{TLSConfig: &tls.Config{RootCAs: pool}})
	checkBusybox(t, e, ref)

	e2 := newEnv(t, registry.Options{})
	_, err = e2.pull(ref)
	if err == nil {
		t.Fatal("pull without the registry's CA succeeded")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error does not say it is about the certificate: %v", err)
	}
	t.Logf("without the CA: %v", err)
	if len(e2.blobs()) != 0 {
		t.Errorf("blobs stored: %v", e2.blobs())
	}
}
