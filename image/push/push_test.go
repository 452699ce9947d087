package push_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/content/local"
	"github.com/berth-dev/berth/image/credentials"
	"github.com/berth-dev/berth/image/progress"
	"github.com/berth-dev/berth/image/push"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/internal/testutil/registry"
)

// loadStore puts every blob of img's OCI layout into a new content store.
func loadStore(t *testing.T, imgs ...*images.Image) *local.Store {
	t.Helper()
	s, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs {
		dir := filepath.Join(img.Layout, "blobs", "sha256")
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			f, err := os.Open(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			fi, _ := f.Stat()
			d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
			err = content.WriteBlob(context.Background(), s, "load-"+e.Name(), f, ocispec.Descriptor{Digest: d, Size: fi.Size()})
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// proxy sits between the pusher and the registry: it counts the bytes of
// blob uploads per repository and mounts, and fails chosen requests with
// 500 to exercise retries.
type proxy struct {
	srv  *httptest.Server
	Host string

	mu       sync.Mutex
	uploaded map[string]int64 // repository -> bytes sent in PUT/PATCH bodies of blob uploads
	patches  int
	mounted  int // mount requests answered 201

	failPatch atomic.Int32 // fail this many next PATCHes
	failPut   atomic.Int32 // fail this many next blob PUTs
}

func newProxy(t *testing.T, r *registry.Registry) *proxy {
	target, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{uploaded: map[string]int64{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		if req.Method == http.MethodPost && req.URL.Query().Get("mount") != "" && resp.StatusCode == http.StatusCreated {
			p.mu.Lock()
			p.mounted++
			p.mu.Unlock()
		}
		return nil
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		repo, _, isUpload := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/blobs/uploads/")
		if isUpload && (req.Method == http.MethodPatch || req.Method == http.MethodPut) {
			if req.Method == http.MethodPatch {
				p.mu.Lock()
				p.patches++
				p.mu.Unlock()
			}
			fail := &p.failPut
			if req.Method == http.MethodPatch {
				fail = &p.failPatch
			}
			if fail.Load() > 0 && fail.Add(-1) >= 0 {
				_, _ = io.Copy(io.Discard, req.Body)
				http.Error(w, `{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}`, http.StatusInternalServerError)
				return
			}
			req.Body = &countBody{ReadCloser: req.Body, add: func(n int) {
				p.mu.Lock()
				p.uploaded[repo] += int64(n)
				p.mu.Unlock()
			}}
		}
		rp.ServeHTTP(w, req)
	}))
	t.Cleanup(p.srv.Close)
	p.Host = strings.TrimPrefix(p.srv.URL, "http://")
	return p
}

func (p *proxy) bytes(repo string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.uploaded[repo]
}

type countBody struct {
	io.ReadCloser
	add func(int)
}

func (c *countBody) Read(b []byte) (int, error) {
	n, err := c.ReadCloser.Read(b)
	c.add(n)
	return n, err
}

// statuses returns the last status of each layer ID in events.
func statuses(events []progress.Event) map[string][]string {
	m := map[string][]string{}
	for _, ev := range events {
		if ev.ID != "" {
			if l := m[ev.ID]; len(l) == 0 || l[len(l)-1] != ev.Status {
				m[ev.ID] = append(m[ev.ID], ev.Status)
			}
		}
	}
	return m
}

func last(l []string) string { return l[len(l)-1] }

func shortID(d digest.Digest) string { return d.Encoded()[:12] }

// pullBack copies ref out of the registry with skopeo into an OCI layout
// and checks that the manifest (or index) digest is target's and that
// every blob arrived.
func pullBack(t *testing.T, r *registry.Registry, host, repoTag string, img *images.Image, all bool) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "oci")
	args := append([]string{"copy", "--quiet", "--preserve-digests"}, r.SkopeoFlags("src")...)
	if all {
		args = append(args, "--all")
	}
	registry.Skopeo(t, append(args, "docker://"+host+"/"+repoTag, "oci:"+dir+":pulled")...)
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != img.Top.Digest {
		t.Fatalf("pulled %+v, want %s", idx.Manifests, img.Top.Digest)
	}
	for _, l := range img.Layers {
		if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", l.Digest.Encoded())); err != nil {
			t.Errorf("layer %s not pulled: %v", l.Digest, err)
		}
	}
}

func TestPushPlain(t *testing.T) {
	ctx := context.Background()
	r := registry.Start(t)
	p := newProxy(t, r)
	bb := images.Busybox(t)
	store := loadStore(t, bb)
	ref := reference.MustParse(p.Host + "/busybox:latest")

	// First push: chunked (busybox's layer is ~1 MB), with a PATCH and a
	// PUT failing once each on the way.
	p.failPatch.Store(1)
	p.failPut.Store(1)
	var rec progress.Recorder
	var plain strings.Builder
	plainRep := progress.NewPlain(&plain)
	rep := progress.ReporterFunc(func(ev progress.Event) { rec.Report(ev); plainRep.Report(ev) })
	opts := push.Options{Progress: rep, ChunkSize: 256 << 10, RetryDelay: 1}
	if err := push.Push(ctx, ref, bb.Top, store, opts); err != nil {
		t.Fatal(err)
	}
	id := shortID(bb.Layers[0].Digest)
	st := statuses(rec.Events())
	if got := strings.Join(st[id], ","); got != "Preparing,Pushing,Pushed" {
		t.Errorf("layer statuses %s", got)
	}
	if p.failPatch.Load() > 0 || p.failPut.Load() > 0 {
		t.Errorf("injected failures not hit: patch %d put %d", p.failPatch.Load(), p.failPut.Load())
	}
	if p.patches < 4 {
		t.Errorf("%d PATCH requests for a %d-byte layer in 256 KiB chunks", p.patches, bb.Layers[0].Size)
	}
	evs := rec.Events()
	if first, lastEv := evs[0].Status, evs[len(evs)-1].Status; first != "The push refers to repository ["+p.Host+"/busybox]" ||
		lastEv != "latest: digest: "+bb.Top.Digest.String()+" size: "+strconv.FormatInt(bb.Top.Size, 10) {
		t.Errorf("first %q last %q", first, lastEv)
	}
	t.Logf("plain output:\n%s", plain.String())
	if d := r.ManifestDigest(t, "busybox", "latest"); d != bb.Top.Digest.String() {
		t.Errorf("registry has %s", d)
	}
	pullBack(t, r, r.Host, "busybox:latest", bb, false)

	// Second push: nothing is uploaded.
	before := p.bytes("busybox")
	var rec2 progress.Recorder
	if err := push.Push(ctx, ref, bb.Top, store, push.Options{Progress: &rec2}); err != nil {
		t.Fatal(err)
	}
	for lid, s := range statuses(rec2.Events()) {
		if last(s) != "Layer already exists" {
			t.Errorf("second push: %s: %v", lid, s)
		}
	}
	if got := p.bytes("busybox"); got != before {
		t.Errorf("second push uploaded %d bytes", got-before)
	}

	// Another repository, mounting from the first: no layer bytes move.
	var rec3 progress.Recorder
	ref2 := reference.MustParse(p.Host + "/other/box:v1")
	if err := push.Push(ctx, ref2, bb.Top, store, push.Options{Progress: &rec3, MountFrom: []string{"nothere/x", "busybox"}}); err != nil {
		t.Fatal(err)
	}
	if s := statuses(rec3.Events())[id]; last(s) != "Mounted from busybox" {
		t.Errorf("mount push: %v", s)
	}
	if got := p.bytes("other/box"); got != 0 {
		t.Errorf("mount push uploaded %d bytes", got)
	}
	if p.mounted < 2 { // the layer and the config
		t.Errorf("%d mounts", p.mounted)
	}
	pullBack(t, r, r.Host, "other/box:v1", bb, false)

	// A third repository without a mount source uploads monolithically.
	if err := push.Push(ctx, reference.MustParse(p.Host+"/third:latest"), bb.Top, store, push.Options{}); err != nil {
		t.Fatal(err)
	}
	if got, want := p.bytes("third"), bb.Layers[0].Size+bb.Manifest.Config.Size; got != want {
		t.Errorf("third push uploaded %d bytes, want %d", got, want)
	}
}

func TestPushBasicAuth(t *testing.T) {
	ctx := context.Background()
	r := registry.Start(t, registry.WithBasicAuth("alice", "s3cret"))
	img := images.Generated(t, images.Spec{Seed: 42, Layers: 4, Size: 3 << 20, Name: "small"})
	store := loadStore(t, img)
	ref := reference.MustParse(r.Host + "/team/small:1.0")

	// Without credentials: a clear unauthenticated error.
	err := push.Push(ctx, ref, img.Top, store, push.Options{})
	if !errdefs.IsUnauthenticated(err) || !strings.Contains(err.Error(), "authentication required") {
		t.Fatalf("anonymous push: %v", err)
	}
	t.Logf("anonymous push: %v", err)

	// Logged in through the credentials store.
	creds := credentials.NewStore(filepath.Join(t.TempDir(), "config.json"))
	if err := creds.Login(ctx, r.Host, "alice", "s3cret"); err != nil {
		t.Fatal(err)
	}
	var rec progress.Recorder
	opts := push.Options{Keychain: creds.Keychain(), Progress: &rec, ChunkSize: 512 << 10, Concurrency: 1}
	if err := push.Push(ctx, ref, img.Top, store, opts); err != nil {
		t.Fatal(err)
	}
	st := statuses(rec.Events())
	waited := 0
	for _, s := range st {
		if len(s) > 1 && s[1] == "Waiting" {
			waited++
		}
	}
	if waited == 0 { // one upload at a time: the others wait
		t.Errorf("no layer waited: %v", st)
	}
	for _, l := range img.Layers {
		if s := st[shortID(l.Digest)]; len(s) == 0 || last(s) != "Pushed" {
			t.Errorf("layer %s: %v", l.Digest, s)
		}
	}
	pullBack(t, r, r.Host, "team/small:1.0", img, false)
}

func TestPushIndexTokenAuth(t *testing.T) {
	ctx := context.Background()
	r := registry.Start(t, registry.WithTokenAuth(), registry.WithBasicAuth("bob", "t0ken"))
	idx := images.BusyboxIndex(t)
	store := loadStore(t, idx)
	ref := reference.MustParse(r.Host + "/multi/busybox:latest")

	err := push.Push(ctx, ref, idx.Top, store, push.Options{})
	if !errdefs.IsUnauthenticated(err) || !strings.Contains(err.Error(), "authentication required") {
		t.Fatalf("anonymous push: %v", err)
	}
	t.Logf("anonymous push: %v", err)

	creds := credentials.NewStore(filepath.Join(t.TempDir(), "config.json"))
	if err := creds.Put(ctx, r.Host, credentials.Auth{Username: "bob", Password: "t0ken"}); err != nil {
		t.Fatal(err)
	}
	kc := creds.Keychain()
	var rec progress.Recorder
	if err := push.Push(ctx, ref, idx.Top, store, push.Options{Keychain: kc, Progress: &rec}); err != nil {
		t.Fatal(err)
	}
	if d := r.ManifestDigest(t, "multi/busybox", "latest"); d != idx.Top.Digest.String() {
		t.Errorf("registry has %s, want %s", d, idx.Top.Digest)
	}
	for _, m := range idx.Manifests {
		if d := r.ManifestDigest(t, "multi/busybox", m.Digest.String()); d != m.Digest.String() {
			t.Errorf("child %s: registry has %s", m.Digest, d)
		}
	}
	pullBack(t, r, r.Host, "multi/busybox:latest", idx, true)

	// Mount into another repository under token auth: the token must
	// carry pull on the source.
	var rec2 progress.Recorder
	ref2 := reference.MustParse(r.Host + "/copy/busybox:latest")
	if err := push.Push(ctx, ref2, idx.Top, store, push.Options{Keychain: kc, Progress: &rec2, MountFrom: []string{"multi/busybox"}}); err != nil {
		t.Fatal(err)
	}
	st := statuses(rec2.Events())
	if len(st) == 0 {
		t.Fatal("no layer events")
	}
	for lid, s := range st {
		if last(s) != "Mounted from multi/busybox" {
			t.Errorf("layer %s: %v", lid, s)
		}
	}
	var sawFrom bool
	for _, tr := range r.TokenRequests() {
		for _, sc := range tr.Scopes {
			sawFrom = sawFrom || sc == "repository:multi/busybox:pull"
		}
	}
	if !sawFrom {
		t.Errorf("no token asked for pull on the mount source: %+v", r.TokenRequests())
	}
}

func TestPushTLS(t *testing.T) {
	r := registry.Start(t, registry.WithTLS())
	bb := images.Busybox(t)
	pem, err := os.ReadFile(r.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("bad CA certificate")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	ref := reference.MustParse(r.Host + "/secure/busybox:latest")
	if err := push.Push(context.Background(), ref, bb.Top, loadStore(t, bb), push.Options{Transport: tr}); err != nil {
		t.Fatal(err)
	}
	if d := r.ManifestDigest(t, "secure/busybox", "latest"); d != bb.Top.Digest.String() {
		t.Errorf("registry has %s", d)
	}
}
