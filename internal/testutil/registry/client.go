package registry

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// Client returns an HTTP client for this registry: it trusts the
// registry's certificate (WithTLS) and answers 401 challenges itself,
// with basic credentials or by fetching a bearer token from the realm
// the registry names.
func (r *Registry) Client() *http.Client {
	if r.client != nil {
		return r.client
	}
	base := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 10 * time.Second}
	if r.CACert != "" {
		pool := x509.NewCertPool()
		if pem, err := os.ReadFile(r.CACert); err == nil {
			pool.AppendCertsFromPEM(pem)
		}
		base.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	r.client = &http.Client{Transport: &authTransport{base: base, user: r.Username, pass: r.Password}, Timeout: 30 * time.Second}
	return r.client
}

// authTransport retries a request that got a 401 once, with the
// credentials the challenge asks for. Only for bodiless requests.
type authTransport struct {
	base       *http.Transport
	user, pass string
}

func (a *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := a.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || req.Body != nil {
		return resp, err
	}
	scheme, params := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	retry := req.Clone(req.Context())
	switch scheme {
	case "basic":
		if a.user == "" {
			return resp, nil
		}
		retry.SetBasicAuth(a.user, a.pass)
	case "bearer":
		tok, err := a.fetchToken(params)
		if err != nil {
			resp.Body.Close()
			return nil, err
		}
		retry.Header.Set("Authorization", "Bearer "+tok)
	default:
		return resp, nil
	}
	resp.Body.Close()
	return a.base.RoundTrip(retry)
}

func (a *authTransport) fetchToken(params map[string]string) (string, error) {
	u, err := url.Parse(params["realm"])
	if err != nil {
		return "", err
	}
	q := u.Query()
	if params["service"] != "" {
		q.Set("service", params["service"])
	}
	if params["scope"] != "" {
		q.Set("scope", params["scope"])
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	if a.user != "" {
		req.SetBasicAuth(a.user, a.pass)
	}
	resp, err := a.base.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", fmt.Errorf("token %s: %s: %s", u, resp.Status, b)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", err
	}
	if body.Token == "" {
		body.Token = body.AccessToken
	}
	return body.Token, nil
}

// parseChallenge splits `Bearer realm="x",service="y",scope="z"` into a
// lower-case scheme and its parameters.
func parseChallenge(h string) (string, map[string]string) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if strings.HasPrefix(v, `"`) {
			end := strings.Index(v[1:], `"`)
			if end < 0 {
				params[k] = v[1:]
				break
			}
			params[k], rest = v[1:1+end], v[2+end:]
		} else {
			params[k], rest, _ = strings.Cut(v, ",")
		}
		rest = strings.TrimLeft(rest, ", ")
	}
	return strings.ToLower(scheme), params
}

// get sends an authenticated request to path (relative to the URL).
func (r *Registry) get(method, path string, header http.Header) (*http.Response, error) {
	req, err := http.NewRequest(method, r.URL+path, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return r.Client().Do(req)
}

// Catalog lists the registry's repositories (/v2/_catalog).
func (r *Registry) Catalog(t testing.TB) []string {
	t.Helper()
	resp, err := r.get(http.MethodGet, "/v2/_catalog?n=1000", nil)
	if err != nil {
		t.Fatalf("catalog: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("catalog: %s: %s", resp.Status, b)
	}
	var body struct {
		Repositories []string `json:"repositories"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("catalog: %v", err)
	}
	return body.Repositories
}

// ManifestAccept lists the manifest media types a client accepts.
var ManifestAccept = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

// ManifestDigest returns the digest the registry reports
// (Docker-Content-Digest) for repo's manifest ref, a tag or digest.
func (r *Registry) ManifestDigest(t testing.TB, repo, ref string) string {
	t.Helper()
	resp, err := r.get(http.MethodHead, "/v2/"+repo+"/manifests/"+ref, http.Header{"Accept": {strings.Join(ManifestAccept, ", ")}})
	if err != nil {
		t.Fatalf("manifest %s:%s: %v", repo, ref, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("manifest %s:%s: %s", repo, ref, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest")
}
