package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/berth-dev/berth/errdefs"
)

// Transport authenticates requests to one registry the way Docker does:
// it pings /v2/, answers a Basic challenge with the credentials, and
// exchanges them for a bearer token at the realm of a Bearer challenge
// (GET with basic credentials, or the OAuth2 refresh-token POST with an
// identity token), asking for more scopes when a request needs them.
//
// It exists because go-containerregistry's transport refuses a token realm
// on a loopback or private address unless it is the registry's own
// host:port, which rules out every self-hosted registry whose token server
// runs beside it (and the token registries of our tests). Link-local
// realms (the cloud metadata address) are still refused.
//
// Authorization is only ever sent to the registry's host and its realm.
type Transport struct {
	host   string
	scheme string
	base   http.RoundTripper
	auth   authn.Authenticator

	mu        sync.Mutex
	challenge string // "", "basic" or "bearer"
	realm     string
	service   string
	scopes    []string
	token     string
}

// TransportOptions configure NewTransport.
type TransportOptions struct {
	// Base carries the requests (http.DefaultTransport when nil).
	Base http.RoundTripper
	// Insecure allows plain HTTP after HTTPS failed, for any host (loopback
	// and private addresses are always allowed it, as Docker does).
	Insecure bool
	// Scopes are the token scopes to ask for first, e.g.
	// "repository:library/busybox:pull,push".
	Scopes []string
	// Scheme, when set, is the only scheme tried: the caller knows it
	// (the registry client probes it once per host).
	Scheme string
}

// NewTransport pings the registry at host (host[:port]) and prepares to
// authenticate with auth (authn.Anonymous for none). With a Bearer
// challenge it fetches a token for opts.Scopes right away, so bad
// credentials fail here with errdefs.ErrUnauthenticated; an unreachable
// registry wraps errdefs.ErrUnavailable.
func NewTransport(ctx context.Context, host string, auth authn.Authenticator, opts TransportOptions) (*Transport, error) {
	if opts.Base == nil {
		opts.Base = http.DefaultTransport
	}
	if auth == nil {
		auth = authn.Anonymous
	}
	t := &Transport{host: host, base: opts.Base, auth: auth, scopes: slices.Clone(opts.Scopes)}
	schemes := []string{"https"}
	if opts.Insecure || plainHTTPAllowed(host) {
		schemes = append(schemes, "http")
	}
	if opts.Scheme != "" {
		schemes = []string{opts.Scheme}
	}
	var resp *http.Response
	var errs []error
	for _, scheme := range schemes {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+"/v2/", nil)
		if err != nil {
			return nil, fmt.Errorf("registry %s: %v: %w", host, err, errdefs.ErrInvalidArgument)
		}
		resp, err = t.base.RoundTrip(req)
		if err == nil {
			t.scheme = scheme
			break
		}
		errs = append(errs, err)
	}
	if t.scheme == "" {
		return nil, fmt.Errorf("registry %s: ping: %w: %w", host, errors.Join(errs...), errdefs.ErrUnavailable)
	}
	drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return t, nil
	case http.StatusUnauthorized:
	default:
		return nil, fmt.Errorf("registry %s: GET /v2/: %s: %w", host, resp.Status, errdefs.ErrUnavailable)
	}
	scheme, params := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	switch scheme {
	case "basic":
		t.challenge = "basic"
	case "bearer":
		t.challenge, t.realm, t.service = "bearer", params["realm"], params["service"]
		if err := checkRealm(t.realm, host); err != nil {
			return nil, fmt.Errorf("registry %s: %w", host, err)
		}
		if err := t.refresh(ctx); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("registry %s: unsupported challenge %q: %w", host, resp.Header.Get("WWW-Authenticate"), errdefs.ErrNotImplemented)
	}
	return t, nil
}

// Scheme is "https" or "http", whichever answered the ping.
func (t *Transport) Scheme() string { return t.scheme }

// Host is the registry's host[:port].
func (t *Transport) Host() string { return t.host }

// URL is the absolute URL of path (starting with "/v2/") at the registry.
func (t *Transport) URL(path string) string { return t.scheme + "://" + t.host + path }

// AddScopes asks for more token scopes from the next request on (a token
// is fetched at once for bearer registries). It returns the token error.
func (t *Transport) AddScopes(ctx context.Context, scopes ...string) error {
	t.mu.Lock()
	added := false
	for _, s := range scopes {
		if !slices.Contains(t.scopes, s) {
			t.scopes = append(t.scopes, s)
			added = true
		}
	}
	bearer := t.challenge == "bearer"
	t.mu.Unlock()
	if added && bearer {
		return t.refresh(ctx)
	}
	return nil
}

// RoundTrip sends req with the registry's authorization. When a bearer
// registry answers 401, because the request needs a scope not yet held or
// because the token expired, the token is fetched again and the request
// sent once more (if its body can be replayed: GetBody set, or no body).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	sent := t.token
	t.mu.Unlock()
	resp, err := t.base.RoundTrip(t.authorize(req))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || t.challenge != "bearer" ||
		(req.Body != nil && req.Body != http.NoBody && req.GetBody == nil) {
		return resp, err
	}
	_, params := parseChallenge(resp.Header.Get("WWW-Authenticate"))
	scope := params["scope"]
	t.mu.Lock()
	newScope := scope != "" && !slices.Contains(t.scopes, scope)
	expired := t.token == sent // nobody fetched a new token meanwhile
	t.mu.Unlock()
	drain(resp)
	switch {
	case newScope:
		err = t.AddScopes(req.Context(), scope)
	case expired:
		err = t.refresh(req.Context())
	}
	if err != nil {
		return nil, err
	}
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	return t.base.RoundTrip(t.authorize(retry))
}

// authorize returns req with the Authorization header, when req goes to
// the registry.
func (t *Transport) authorize(req *http.Request) *http.Request {
	if req.URL.Host != t.host || t.challenge == "" {
		return req
	}
	out := req.Clone(req.Context())
	out.Body = req.Body
	switch t.challenge {
	case "basic":
		cfg, err := authn.Authorization(req.Context(), t.auth)
		if err == nil && (cfg.Username != "" || cfg.Password != "") {
			out.SetBasicAuth(cfg.Username, cfg.Password)
		}
	case "bearer":
		t.mu.Lock()
		tok := t.token
		t.mu.Unlock()
		if tok != "" {
			out.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	return out
}

// refresh fetches a token for the current scopes.
func (t *Transport) refresh(ctx context.Context) error {
	cfg, err := authn.Authorization(ctx, t.auth)
	if err != nil {
		return fmt.Errorf("registry %s: credentials: %w", t.host, err)
	}
	if cfg.RegistryToken != "" {
		t.mu.Lock()
		t.token = cfg.RegistryToken
		t.mu.Unlock()
		return nil
	}
	t.mu.Lock()
	scopes := slices.Clone(t.scopes)
	t.mu.Unlock()

	var req *http.Request
	if cfg.IdentityToken != "" {
		form := url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {cfg.IdentityToken},
			"service":       {t.service},
			"client_id":     {"berth"},
			"scope":         {strings.Join(scopes, " ")},
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, t.realm, strings.NewReader(form.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		q := url.Values{}
		if t.service != "" {
			q.Set("service", t.service)
		}
		for _, s := range scopes {
			q.Add("scope", s)
		}
		if cfg.Username != "" {
			q.Set("account", cfg.Username)
		}
		u := t.realm
		if len(q) > 0 {
			sep := "?"
			if strings.Contains(u, "?") {
				sep = "&"
			}
			u += sep + q.Encode()
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err == nil && (cfg.Username != "" || cfg.Password != "") {
			req.SetBasicAuth(cfg.Username, cfg.Password)
		}
	}
	if err != nil {
		return fmt.Errorf("registry %s: token request: %v: %w", t.host, err, errdefs.ErrInvalidArgument)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("registry %s: token from %s: %v: %w", t.host, t.realm, err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		why := "incorrect username or password"
		if cfg.Username == "" && cfg.IdentityToken == "" {
			why = "authentication required"
		}
		return fmt.Errorf("registry %s: unauthorized: %s (token server %s: %s): %w", t.host, why, t.realm, resp.Status, errdefs.ErrUnauthenticated)
	default:
		return fmt.Errorf("registry %s: token server %s: %s: %w", t.host, t.realm, resp.Status, errdefs.ErrUnavailable)
	}
	var tr struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return fmt.Errorf("registry %s: token server %s: bad answer: %v: %w", t.host, t.realm, err, errdefs.ErrUnavailable)
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" {
		return fmt.Errorf("registry %s: token server %s: no token in the answer: %w", t.host, t.realm, errdefs.ErrUnavailable)
	}
	t.mu.Lock()
	t.token = tok
	t.mu.Unlock()
	return nil
}

// checkRealm refuses realms that are not http(s) URLs, and link-local
// realms (cloud metadata services) unless the registry itself is there.
func checkRealm(realm, registryHost string) error {
	u, err := url.Parse(realm)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("bad token realm %q: %w", realm, errdefs.ErrInvalidArgument)
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil && (ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast()) && hostOnly(registryHost) != u.Hostname() {
		return fmt.Errorf("token realm %q is a link-local address: %w", realm, errdefs.ErrPermissionDenied)
	}
	return nil
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// plainHTTPAllowed reports whether Docker would fall back to plain HTTP
// for host without --insecure-registry: loopback and private addresses
// and "localhost".
func plainHTTPAllowed(host string) bool {
	h := hostOnly(host)
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate())
}

// parseChallenge splits `Bearer realm="x",service="y",scope="a b"` into a
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
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, `"`) {
			end := strings.Index(v[1:], `"`)
			if end < 0 {
				params[k] = v[1:]
				break
			}
			params[k], rest = v[1:end+1], v[end+2:]
		} else {
			params[k], rest, _ = strings.Cut(v, ",")
		}
		rest = strings.TrimPrefix(strings.TrimSpace(rest), ",")
		rest = strings.TrimSpace(rest)
	}
	return strings.ToLower(scheme), params
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
}
