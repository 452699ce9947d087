package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berth-dev/berth/errdefs"
)

// authTransport authenticates requests to one repository the way Docker
// does: it pings /v2/, and answers the registry's WWW-Authenticate
// challenge with basic credentials or with a bearer token from the realm
// it names (Docker token auth, OAuth2 refresh tokens for identity tokens).
// A 401 on a later request (expired token, wider scope asked) refreshes
// the token once and replays the request.
//
// It replaces go-containerregistry's transport.NewWithContext, which
// (since its SSRF guard, ggcr #2258) refuses any token realm on a private
// or loopback address unless it is the registry's own host:port: on-prem
// registries whose token server is another private host (GitLab, a
// separate auth service) and every loopback test setup break, where Docker
// and podman accept them. Credentials still come from authn keychains.
type authTransport struct {
	inner  http.RoundTripper
	auth   authn.Authenticator
	scheme string // of the registry
	host   string
	scope  string

	mu        sync.Mutex
	kind      string // "", "basic" or "bearer"
	challenge map[string]string
	token     string
}

// ping asks /v2/ for the registry's challenge and, for token auth, fetches
// the first token.
func (a *authTransport) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.scheme+"://"+a.host+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := a.inner.RoundTrip(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusUnauthorized:
	default:
		return fmt.Errorf("ping %s: unexpected status %s: %w", a.host, resp.Status, errdefs.ErrUnavailable)
	}
	kind, params := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	a.mu.Lock()
	defer a.mu.Unlock()
	switch kind {
	case "basic":
		a.kind = "basic"
		return nil
	case "bearer":
		a.kind, a.challenge = "bearer", params
		return a.refreshLocked(ctx, "")
	}
	return fmt.Errorf("ping %s: unsupported authentication challenge %q: %w", a.host, resp.Header.Get("WWW-Authenticate"), errdefs.ErrNotImplemented)
}

func (a *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	a.mu.Lock()
	kind, token := a.kind, a.token
	a.mu.Unlock()
	resp, err := a.inner.RoundTrip(a.authorize(req, kind, token))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || kind != "bearer" || (req.Body != nil && req.Body != http.NoBody) {
		return resp, err
	}
	// The token expired or lacks a scope the registry now asks for.
	_, params := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	a.mu.Lock()
	if a.token == token { // nobody refreshed meanwhile
		err = a.refreshLocked(req.Context(), params["scope"])
	}
	token = a.token
	a.mu.Unlock()
	if err != nil {
		return resp, nil // let the caller see the registry's 401
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return a.inner.RoundTrip(a.authorize(req, kind, token))
}

// authorize adds the Authorization header for requests to the registry
// itself; redirects to blob storage elsewhere carry their own signature.
func (a *authTransport) authorize(req *http.Request, kind, token string) *http.Request {
	if req.URL.Host != a.host {
		return req
	}
	switch kind {
	case "basic":
		cfg, err := authn.Authorization(req.Context(), a.auth)
		if err != nil || (cfg.Username == "" && cfg.Password == "" && cfg.Auth == "") {
			return req
		}
		r := req.Clone(req.Context())
		if cfg.Auth != "" {
			r.Header.Set("Authorization", "Basic "+cfg.Auth)
		} else {
			r.SetBasicAuth(cfg.Username, cfg.Password)
		}
		return r
	case "bearer":
		if token == "" {
			return req
		}
		r := req.Clone(req.Context())
		r.Header.Set("Authorization", "Bearer "+token)
		return r
	}
	return req
}

// refreshLocked fetches a token for a.scope (and extra, a scope the
// registry asked for); a.mu is held.
func (a *authTransport) refreshLocked(ctx context.Context, extra string) error {
	cfg, err := authn.Authorization(ctx, a.auth)
	if err != nil {
		return fmt.Errorf("credentials for %s: %w", a.host, err)
	}
	if cfg.RegistryToken != "" {
		a.token = cfg.RegistryToken
		return nil
	}
	realm := a.challenge["realm"]
	u, err := url.Parse(realm)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && a.scheme == "http")) {
		return fmt.Errorf("registry %s: token realm %q: must be https (http only for an http registry): %w", a.host, realm, errdefs.ErrInvalidArgument)
	}
	scopes := []string{a.scope}
	if extra != "" && extra != a.scope {
		scopes = append(scopes, extra)
	}
	service := a.challenge["service"]
	user, pass := cfg.Username, cfg.Password
	if cfg.Auth != "" && user == "" {
		user, pass, _ = decodeAuth(cfg.Auth)
	}

	var req *http.Request
	if cfg.IdentityToken != "" {
		// OAuth2 refresh-token grant, as docker login's identity tokens.
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {cfg.IdentityToken},
			"service": {service}, "client_id": {"berth"}, "scope": {strings.Join(scopes, " ")}}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, realm, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		q := u.Query()
		if service != "" {
			q.Set("service", service)
		}
		for _, s := range scopes {
			q.Add("scope", s)
		}
		if user != "" {
			q.Set("account", user)
		}
		u.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err == nil && (user != "" || pass != "") {
			req.SetBasicAuth(user, pass)
		}
	}
	if err != nil {
		return err
	}
	resp, err := a.inner.RoundTrip(req)
	if err != nil {
		return classify("token from "+u.Host, err)
	}
	defer resp.Body.Close()
	if err := checkStatus("token from "+u.Host+" for "+strings.Join(scopes, " "), resp, http.StatusOK); err != nil {
		return err
	}
	var tr struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil {
		return fmt.Errorf("token from %s: %w: %v", u.Host, errdefs.ErrUnavailable, err)
	}
	a.token = tr.Token
	if a.token == "" {
		a.token = tr.AccessToken
	}
	if a.token == "" {
		return fmt.Errorf("token from %s: empty token: %w", u.Host, errdefs.ErrUnavailable)
	}
	return nil
}

// parseChallenge parses `Bearer realm="...",service="...",scope="..."`
// into its lower-cased scheme and parameters.
func parseChallenge(h string) (string, map[string]string) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		k, v, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' && i+1 < len(v) {
					i++
				}
				b.WriteByte(v[i])
			}
			params[k] = b.String()
			rest = v[min(i+1, len(v)):]
		} else {
			val, r, _ := strings.Cut(v, ",")
			params[k] = strings.TrimSpace(val)
			rest = "," + r
		}
		rest = strings.TrimLeft(rest, ", ")
	}
	return strings.ToLower(scheme), params
}

func decodeBase64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

func decodeAuth(s string) (string, string, error) {
	b, err := decodeBase64(s)
	if err != nil {
		return "", "", err
	}
	u, p, _ := strings.Cut(string(b), ":")
	return u, p, nil
}
