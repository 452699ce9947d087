package credentials

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/berth-dev/berth/errdefs"
)

func TestParseChallenge(t *testing.T) {
	for h, want := range map[string]map[string]string{
		`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"`: {
			"realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull,push",
		},
		`Basic realm="Registry Realm"`:        {"realm": "Registry Realm"},
		`Bearer realm=https://x/t, service=y`: {"realm": "https://x/t", "service": "y"},
	} {
		_, got := parseChallenge(h)
		if !maps.Equal(got, want) {
			t.Errorf("parseChallenge(%q) = %v, want %v", h, got, want)
		}
	}
	if s, _ := parseChallenge(`Bearer realm="x"`); s != "bearer" {
		t.Errorf("scheme %q", s)
	}
}

func TestCheckRealm(t *testing.T) {
	for _, ok := range []string{"https://auth.docker.io/token", "http://127.0.0.1:4000/token", "http://10.1.2.3/token"} {
		if err := checkRealm(ok, "registry.example"); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	if err := checkRealm("http://169.254.169.254/latest/meta-data", "registry.example"); !errdefs.IsPermissionDenied(err) {
		t.Errorf("metadata realm: %v", err)
	}
	if err := checkRealm("file:///etc/passwd", "registry.example"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("file realm: %v", err)
	}
}

// TestTokenExpiry: a registry that stops accepting a token (it expired)
// gets a new one from the token server, and the request is sent again
// once; a request whose body cannot be replayed gets the 401 back.
func TestTokenExpiry(t *testing.T) {
	var issued, valid atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			n := issued.Add(1)
			valid.Store(n)
			fmt.Fprintf(w, `{"token":"t%d"}`, n)
			return
		}
		if r.Header.Get("Authorization") != fmt.Sprintf("Bearer t%d", valid.Load()) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="test",scope="repository:a/b:pull"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	tr, err := NewTransport(ctx, host, nil, TransportOptions{Scopes: []string{"repository:a/b:pull"}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(body io.Reader) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, tr.URL("/v2/a/b/manifests/x"), body)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(nil); code != http.StatusOK || issued.Load() != 1 {
		t.Fatalf("first request: %d, %d tokens", code, issued.Load())
	}
	valid.Store(0) // the registry forgets the token
	if code := get(nil); code != http.StatusOK || issued.Load() != 2 {
		t.Errorf("after expiry: %d, %d tokens issued (want a second)", code, issued.Load())
	}
	valid.Store(0)
	if code := get(io.NopCloser(strings.NewReader("body"))); code != http.StatusUnauthorized || issued.Load() != 2 {
		t.Errorf("unreplayable body: %d, %d tokens issued", code, issued.Load())
	}
}
