package credentials

import (
	"context"
	"fmt"
	"net/http"

	"github.com/berth-dev/berth/errdefs"
)

// LoginOption configures Login.
type LoginOption func(*loginOptions)

type loginOptions struct {
	transport http.RoundTripper
	insecure  bool
}

// WithTransport sends Login's requests through rt (e.g. one trusting a
// private CA). The default is http.DefaultTransport.
func WithTransport(rt http.RoundTripper) LoginOption {
	return func(o *loginOptions) { o.transport = rt }
}

// WithInsecure allows plain HTTP to any registry (an --insecure-registry).
// Loopback and private addresses are allowed plain HTTP anyway, after
// HTTPS was tried.
func WithInsecure() LoginOption { return func(o *loginOptions) { o.insecure = true } }

// Login checks user and pass against the registry at host, as `docker
// login` does (GET /v2/ answering a basic challenge, or a token request to
// the realm of a bearer challenge), and stores them when the registry
// accepts them. Rejected credentials return an error wrapping
// errdefs.ErrUnauthenticated and store nothing; an unreachable registry
// wraps errdefs.ErrUnavailable.
func (s *Store) Login(ctx context.Context, host, user, pass string, opts ...LoginOption) error {
	if user == "" || pass == "" {
		return fmt.Errorf("login to %s: username and password are required: %w", displayHost(ServerKey(host)), errdefs.ErrInvalidArgument)
	}
	a := Auth{Username: user, Password: pass}
	if err := Verify(ctx, host, a, opts...); err != nil {
		return err
	}
	return s.Put(ctx, host, a)
}

// Logout removes host's credentials; see Erase.
func (s *Store) Logout(ctx context.Context, host string) error { return s.Erase(ctx, host) }

// registryHost is the host to contact for a registry named by host.
func registryHost(host string) string {
	if ServerKey(host) == DockerHubKey {
		return "index.docker.io"
	}
	return hostname(host)
}

// Verify checks that the registry at host accepts a: a token for no
// particular scope from a bearer registry, or GET /v2/ with the
// credentials from a basic one.
func Verify(ctx context.Context, host string, a Auth, opts ...LoginOption) error {
	o := loginOptions{transport: http.DefaultTransport}
	for _, opt := range opts {
		opt(&o)
	}
	display := displayHost(ServerKey(host))
	t, err := NewTransport(ctx, registryHost(host), Authenticator(a), TransportOptions{Base: o.transport, Insecure: o.insecure})
	if err != nil {
		return fmt.Errorf("login to %s: %w", display, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL("/v2/"), nil)
	if err != nil {
		return err
	}
	resp, err := t.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("login to %s: %v: %w", display, err, errdefs.ErrUnavailable)
	}
	drain(resp)
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("login to %s: unauthorized: incorrect username or password: %w", display, errdefs.ErrUnauthenticated)
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("login to %s: denied: %w", display, errdefs.ErrPermissionDenied)
	default:
		return fmt.Errorf("login to %s: GET /v2/: %s: %w", display, resp.Status, errdefs.ErrUnavailable)
	}
}
