package pull_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/content/local"
	"github.com/berth-dev/berth/image/pull"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/registry"
	"github.com/berth-dev/berth/internal/testutil"
	treg "github.com/berth-dev/berth/internal/testutil/registry"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/overlay"
)

// env is one empty image store: a content store and an overlay
// snapshotter in the test's temp dir.
type env struct {
	t      *testing.T
	cs     *local.Store
	sn     *overlay.Snapshotter
	client *registry.Client
	mu     sync.Mutex
	events []pull.Event
}

func newEnv(t *testing.T, ropts registry.Options) *env {
	t.Helper()
	testutil.RequireRoot(t)
	return newEnvIn(t, t.TempDir(), ropts)
}

// newEnvIn is newEnv with the store under root.
func newEnvIn(t *testing.T, root string, ropts registry.Options) *env {
	t.Helper()
	cs, err := local.NewStore(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := overlay.New(filepath.Join(root, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	if ropts.ConfigPath == "" && ropts.Keychain == nil {
		ropts.ConfigPath = filepath.Join(root, "no-docker-config.json") // never the host's credentials
	}
	if ropts.Backoff == 0 {
		ropts.Backoff = 10 * time.Millisecond
	}
	return &env{t: t, cs: cs, sn: sn, client: registry.New(ropts)}
}

func (e *env) opts() pull.Options {
	return pull.Options{Registry: e.client, Content: e.cs, Snapshots: e.sn, Progress: func(ev pull.Event) {
		e.mu.Lock()
		e.events = append(e.events, ev)
		e.mu.Unlock()
	}}
}

func (e *env) pull(ref string, mod ...func(*pull.Options)) (pull.Result, error) {
	e.t.Helper()
	e.mu.Lock()
	e.events = nil
	e.mu.Unlock()
	o := e.opts()
	for _, m := range mod {
		m(&o)
	}
	return pull.Pull(context.Background(), reference.MustParse(ref), o)
}

// statuses counts the events of each status in the last pull.
func (e *env) statuses() map[pull.Status]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := map[pull.Status]int{}
	for _, ev := range e.events {
		m[ev.Status]++
	}
	return m
}

// view mounts a read-only view of chain and calls fn with its root.
func (e *env) view(chain digest.Digest, fn func(root string)) {
	t := e.t
	t.Helper()
	key := "view-" + chain.Encoded()[:12]
	mounts, err := e.sn.View(context.Background(), key, chain.String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.sn.Remove(context.Background(), key); err != nil {
			t.Error(err)
		}
	}()
	dir := t.TempDir()
	if err := snapshot.MountAll(mounts, dir); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := snapshot.UnmountAll(dir); err != nil {
			t.Error(err)
		}
	}()
	fn(dir)
}

// snapshots lists the names of all snapshots.
func (e *env) snapshots() []string {
	var names []string
	e.sn.Walk(context.Background(), func(_ context.Context, info snapshot.Info) error {
		names = append(names, info.Name)
		return nil
	})
	return names
}

// blobs lists the committed blobs.
func (e *env) blobs() map[digest.Digest]bool {
	m := map[digest.Digest]bool{}
	e.cs.Walk(context.Background(), func(i content.Info) error { m[i.Digest] = true; return nil })
	return m
}

// writeDockerConfig writes a config.json with basic credentials for host.
func writeDockerConfig(t *testing.T, host, user, pass string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	cfg := map[string]any{"auths": map[string]any{host: map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}}}
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// proxy is a 127.0.0.1 reverse proxy in front of a registry that can
// misbehave on blob downloads.
type proxy struct {
	srv      *httptest.Server
	upstream string
	// blob, if set, decides per blob GET what to do; see proxyAction.
	blob func(n int, req *http.Request) proxyAction
	// fail503 answers this many requests (any path) with 503 first.
	fail503 atomic.Int32

	blobGets atomic.Int32
	mu       sync.Mutex
	ranges   []string
}

type proxyAction struct {
	cutAfter int64 // > 0: drop the connection after this many body bytes
	flipAt   int64 // > 0: flip the byte at this body offset
}

func newProxy(t *testing.T, upstream string) *proxy {
	p := &proxy{upstream: upstream}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

// Host is the proxy's host:port.
func (p *proxy) Host() string { return strings.TrimPrefix(p.srv.URL, "http://") }

func (p *proxy) serve(w http.ResponseWriter, req *http.Request) {
	if p.fail503.Load() > 0 && p.fail503.Add(-1) >= 0 {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	var act proxyAction
	if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
		n := int(p.blobGets.Add(1))
		p.mu.Lock()
		p.ranges = append(p.ranges, req.Header.Get("Range"))
		p.mu.Unlock()
		if p.blob != nil {
			act = p.blob(n, req)
		}
	}
	out, _ := http.NewRequestWithContext(req.Context(), req.Method, p.upstream+req.URL.RequestURI(), nil)
	out.Header = req.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	var off int64
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		chunk := buf[:n]
		if act.cutAfter > 0 && off+int64(n) > act.cutAfter {
			w.Write(chunk[:act.cutAfter-off])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // drops the connection mid-body
		}
		if act.flipAt > 0 && act.flipAt >= off && act.flipAt < off+int64(n) {
			chunk[act.flipAt-off] ^= 0x55
		}
		w.Write(chunk)
		off += int64(n)
		if err != nil {
			return
		}
	}
}

func (p *proxy) rangeHeaders() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.ranges...)
}

func startRegistry(t *testing.T, opts ...treg.Option) *treg.Registry {
	t.Helper()
	testutil.RequireRoot(t)
	return treg.Start(t, opts...)
}

type digestT = digest.Digest
