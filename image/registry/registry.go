// Package registry owns Berth's client side of the OCI distribution
// protocol: authenticating to a registry, resolving tags, fetching
// manifests and streaming blobs (with resume).
//
// From go-containerregistry (DESIGN.md's choice) it uses names, keychains
// (authn: config.json auths, credential helpers) and error decoding
// (transport.Error). The protocol itself is plain HTTP, for two measured
// reasons: the puller needs the raw blob stream (to tee it into the content
// store and a decompressor as bytes arrive) and Range requests to resume a
// broken download at the byte it stopped, which remote's Layer API hides;
// and go-containerregistry's auth handshake refuses token realms on private
// or loopback addresses other than the registry's own (see token.go),
// which Docker accepts. The handshake here is Docker's: ping /v2/, answer
// the WWW-Authenticate challenge with basic credentials or a bearer token.
//
// Transport policy, as Docker's: registries in Options.Insecure and every
// loopback host (localhost, 127.0.0.0/8, ::1) are spoken to over plain
// http; everything else over https. Every request is retried with
// exponential backoff on 5xx, 429 and dropped connections (see retry.go);
// a blob body that breaks mid-stream is resumed with a Range request
// (see blob.go).
//
// Errors are in errdefs' categories: ErrUnauthenticated (401, or
// credentials refused by the token server), ErrPermissionDenied (403),
// ErrNotFound (404, unknown manifest or blob), ErrUnavailable (the
// registry kept failing or was unreachable), ErrFailedPrecondition (a
// manifest whose digest or size does not match), ErrInvalidArgument.
package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/credentials"
	"github.com/berth-dev/berth/image/reference"
)

// Media types of Docker's formats that the client understands besides the
// OCI ones.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
)

// ManifestAccept lists the manifest media types the client asks for,
// indexes first so that a multi-platform tag resolves to its index.
var ManifestAccept = []string{
	ocispec.MediaTypeImageIndex,
	MediaTypeDockerManifestList,
	ocispec.MediaTypeImageManifest,
	MediaTypeDockerManifest,
}

// MaxManifestSize caps a manifest or index read into memory (4 MiB, as
// distribution's own limit).
const MaxManifestSize = 4 << 20

// Options configures a Client. The zero value is usable: credentials from
// the default Docker config, http only for loopback hosts, 5 retries.
type Options struct {
	// Keychain resolves credentials per registry. When nil, credentials
	// come from the Docker config file at ConfigPath.
	Keychain authn.Keychain
	// ConfigPath is the Docker config.json to read credentials from
	// (auths, credsStore, credHelpers). "" means Docker's default
	// ($DOCKER_CONFIG/config.json, else ~/.docker/config.json).
	ConfigPath string
	// Insecure lists registries ("host" or "host:port") reached over
	// plain http. Loopback hosts always are.
	Insecure []string
	// Mirrors are pull-through mirrors of Docker Hub ("scheme://host/",
	// as --registry-mirror), tried in order before it.
	Mirrors []string
	// TLSConfig, if set, is used for https (e.g. a private CA).
	TLSConfig *tls.Config
	// Transport, if set, replaces the base HTTP transport (tests).
	Transport http.RoundTripper
	// Retries is how many times a failed request is retried (default 5;
	// negative: never).
	Retries int
	// Backoff is the first retry's delay, doubled for each further retry
	// (default 100ms, capped at 5s).
	Backoff time.Duration
	// UserAgent is sent with every request (default "berth").
	UserAgent string
}

// Client talks to registries. It is safe for concurrent use and caches one
// authenticated transport per repository.
type Client struct {
	opts     Options
	keychain authn.Keychain
	base     http.RoundTripper // retrying, no auth
	raw      http.RoundTripper // base without retries
	// mirrorBase retries once: a mirror that is down must cost a pull
	// little before it moves on to the next mirror or the registry.
	mirrorBase http.RoundTripper

	mu    sync.Mutex
	repos map[string]*repoEntry
}

type repoEntry struct {
	once sync.Once
	repo *Repository
	err  error
}

// New returns a Client.
func New(opts Options) *Client {
	if opts.Retries == 0 {
		opts.Retries = 5
	}
	if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 100 * time.Millisecond
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "berth"
	}
	kc := opts.Keychain
	if kc == nil {
		path := opts.ConfigPath
		if path == "" {
			path = credentials.DefaultPath()
		}
		kc = credentials.NewStore(path).Keychain()
	}
	base := opts.Transport
	if base == nil {
		base = newHTTPTransport(opts.TLSConfig)
	}
	return &Client{
		opts:       opts,
		keychain:   kc,
		base:       &retryTransport{inner: base, retries: opts.Retries, backoff: opts.Backoff, ua: opts.UserAgent},
		raw:        base,
		mirrorBase: &retryTransport{inner: base, retries: min(opts.Retries, 1), backoff: opts.Backoff, ua: opts.UserAgent},
		repos:      map[string]*repoEntry{},
	}
}

// newHTTPTransport is tuned for pulling several big blobs at once from one
// host: enough idle connections per host, no transparent gzip (blobs are
// already compressed and must arrive byte for byte).
func newHTTPTransport(tlsConfig *tls.Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 16
	t.DisableCompression = true
	t.ResponseHeaderTimeout = 60 * time.Second
	t.ReadBufferSize = 256 << 10
	t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	if tlsConfig != nil {
		t.TLSClientConfig = tlsConfig.Clone()
	}
	return t
}

// Insecure reports whether host ("host" or "host:port") is spoken to over
// plain http: it is listed in Options.Insecure (with or without its port)
// or it is a loopback host.
func (c *Client) Insecure(host string) bool {
	if c.listedInsecure(host) {
		return true
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// scheme returns "http" or "https" for host.
func (c *Client) scheme(host string) string {
	if c.Insecure(host) {
		return "http"
	}
	return "https"
}

// probeScheme picks the scheme for host. A host listed in
// Options.Insecure is http and any other non-loopback host https, as
// scheme says. A loopback host may serve either (a test or CI registry
// with its own CA): one unretried https request to /v2/ decides, as
// Docker tries TLS first; a plain-http answer (or a refused handshake)
// means http. A certificate that does not verify is an error naming the
// remedy, never a silent downgrade to http.
func (c *Client) probeScheme(ctx context.Context, host string) (string, error) {
	sch := c.scheme(host)
	if sch == "https" || c.listedInsecure(host) {
		return sch, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/v2/", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.raw.RoundTrip(req)
	if err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return "https", nil
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	if errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) {
		return "", fmt.Errorf("https://%s serves a certificate that is not trusted (give its CA in the client's TLS configuration): %w: %v",
			host, errdefs.ErrUnavailable, err)
	}
	return "http", nil
}

// listedInsecure reports whether host is in Options.Insecure (with or
// without its port).
func (c *Client) listedInsecure(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	for _, i := range c.opts.Insecure {
		if i == host || i == h {
			return true
		}
	}
	return false
}

// registryHost maps Docker Hub's name to its API endpoint, as Docker does.
func registryHost(domain string) string {
	if domain == "docker.io" {
		return "registry-1.docker.io"
	}
	return domain
}

// Repository returns an authenticated handle on ref's repository, with
// pull access. The handshake (ping, challenge, token) happens once per
// repository and Client, unless ctx carries a request's own credentials
// (credentials.WithAuth).
func (c *Client) Repository(ctx context.Context, ref reference.Named) (*Repository, error) {
	return c.repository(ctx, ref, "")
}

// Mirrors returns the mirrors a pull of ref tries before ref's registry:
// Options.Mirrors for Docker Hub's images, none for other registries'.
func (c *Client) Mirrors(ref reference.Named) []string {
	if ref.Domain() != "docker.io" {
		return nil
	}
	return c.opts.Mirrors
}

// MirrorRepository is Repository on mirror (one of Mirrors(ref)): the
// mirror's scheme and host, ref's path, and the credentials of ref's
// registry, which Docker sends to its mirrors too.
func (c *Client) MirrorRepository(ctx context.Context, ref reference.Named, mirror string) (*Repository, error) {
	return c.repository(ctx, ref, mirror)
}

func (c *Client) repository(ctx context.Context, ref reference.Named, mirror string) (*Repository, error) {
	if ref.IsZero() {
		return nil, fmt.Errorf("registry: empty reference: %w", errdefs.ErrInvalidArgument)
	}
	if _, ok := credentials.FromContext(ctx); ok {
		// A request's own credentials: its handle is its own too.
		return c.open(ctx, ref, mirror)
	}
	key := mirror + ref.Name()
	c.mu.Lock()
	e := c.repos[key]
	if e == nil {
		e = &repoEntry{}
		c.repos[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.repo, e.err = c.open(ctx, ref, mirror) })
	if e.err != nil {
		c.mu.Lock()
		if c.repos[key] == e {
			delete(c.repos, key) // do not cache failures
		}
		c.mu.Unlock()
	}
	return e.repo, e.err
}

// open makes ref's repository handle on ref's registry, or on mirror
// when it is not "".
func (c *Client) open(ctx context.Context, ref reference.Named, mirror string) (*Repository, error) {
	host, where := registryHost(ref.Domain()), "registry "+ref.Domain()
	repo, err := name.NewRepository(ref.Domain()+"/"+ref.Path(), name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("registry: repository %q: %w: %v", ref.Name(), errdefs.ErrInvalidArgument, err)
	}
	auth, err := authn.Resolve(ctx, c.keychain, repo)
	if err != nil {
		return nil, fmt.Errorf("%s: credentials: %w", where, err)
	}
	scheme, base := "", c.base
	if mirror != "" {
		base = c.mirrorBase
		u, err := url.Parse(mirror)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("registry mirror %q: not a http:// or https:// URL: %w", mirror, errdefs.ErrInvalidArgument)
		}
		host, scheme, where = u.Host, u.Scheme, "registry mirror "+mirror
	} else if scheme, err = c.probeScheme(ctx, host); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	at, err := credentials.NewTransport(ctx, host, auth, credentials.TransportOptions{
		Base: base, Scheme: scheme, Scopes: []string{"repository:" + ref.Path() + ":pull"}})
	if err != nil {
		what := "authenticate for " + ref.Path()
		if mirror != "" {
			what = where + ": " + what
		}
		return nil, classify(what, err)
	}
	return &Repository{
		c:      c,
		name:   ref,
		base:   fmt.Sprintf("%s://%s/v2/%s", scheme, host, ref.Path()),
		client: &http.Client{Transport: at},
	}, nil
}

// Repository is one repository of one registry, authenticated for pull.
// It is safe for concurrent use.
type Repository struct {
	c      *Client
	name   reference.Named
	base   string // scheme://host/v2/<path>
	client *http.Client
}

// Name is the repository's reference (without tag or digest).
func (r *Repository) Name() reference.Named { return r.name }

// Resolve returns the descriptor of the manifest (or index) that tagOrDigest
// names, with its bytes, verified: by digest, the bytes must hash to it;
// by tag, the descriptor's digest is computed from the bytes.
func (r *Repository) Resolve(ctx context.Context, tagOrDigest string) (ocispec.Descriptor, []byte, error) {
	var want digest.Digest
	if strings.Contains(tagOrDigest, ":") {
		want = digest.Digest(tagOrDigest)
		if err := want.Validate(); err != nil {
			return ocispec.Descriptor{}, nil, fmt.Errorf("manifest %q: %w: %v", tagOrDigest, errdefs.ErrInvalidArgument, err)
		}
	}
	return r.manifest(ctx, tagOrDigest, ocispec.Descriptor{Digest: want})
}

// FetchManifest fetches the manifest or index desc, verified against
// desc's digest and size.
func (r *Repository) FetchManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("manifest %q: %w: %v", desc.Digest, errdefs.ErrInvalidArgument, err)
	}
	_, b, err := r.manifest(ctx, desc.Digest.String(), desc)
	return b, err
}

func (r *Repository) manifest(ctx context.Context, ref string, want ocispec.Descriptor) (ocispec.Descriptor, []byte, error) {
	what := fmt.Sprintf("manifest %s:%s", r.name.Name(), ref)
	if want.Size > MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: %d bytes, more than %d: %w", what, want.Size, MaxManifestSize, errdefs.ErrFailedPrecondition)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/manifests/"+ref, nil)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: %w", what, err)
	}
	accept := ManifestAccept
	if want.MediaType != "" {
		accept = append([]string{want.MediaType}, accept...)
	}
	req.Header.Set("Accept", strings.Join(accept, ", "))
	resp, err := r.client.Do(req)
	if err != nil {
		return ocispec.Descriptor{}, nil, classify(what, err)
	}
	defer resp.Body.Close()
	if err := checkStatus(what, resp, http.StatusOK); err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return ocispec.Descriptor{}, nil, classify(what, err)
	}
	if len(b) > MaxManifestSize {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: more than %d bytes: %w", what, MaxManifestSize, errdefs.ErrFailedPrecondition)
	}
	desc := ocispec.Descriptor{MediaType: mediaType(resp.Header.Get("Content-Type"), b), Size: int64(len(b))}
	alg := digest.Canonical
	if want.Digest != "" {
		alg = want.Digest.Algorithm()
		if !alg.Available() {
			return ocispec.Descriptor{}, nil, fmt.Errorf("%s: digest algorithm %q: %w", what, alg, errdefs.ErrInvalidArgument)
		}
	}
	desc.Digest = alg.FromBytes(b)
	if want.Digest != "" && desc.Digest != want.Digest {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: digest mismatch: expected %s, got %s: %w", what, want.Digest, desc.Digest, errdefs.ErrFailedPrecondition)
	}
	if want.Size > 0 && desc.Size != want.Size {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: size mismatch: expected %d, got %d: %w", what, want.Size, desc.Size, errdefs.ErrFailedPrecondition)
	}
	return desc, b, nil
}

// mediaType is the manifest's mediaType field when it has one (the
// registry's Content-Type is advisory), else the Content-Type.
func mediaType(contentType string, b []byte) string {
	var probe struct {
		MediaType string `json:"mediaType"`
	}
	if err := jsonUnmarshal(b, &probe); err == nil && probe.MediaType != "" {
		return probe.MediaType
	}
	if ct, _, _ := strings.Cut(contentType, ";"); ct != "" {
		return strings.TrimSpace(ct)
	}
	return ""
}

// checkStatus turns an unexpected response into an error of the right
// category, naming what was asked and the registry's own message.
func checkStatus(what string, resp *http.Response, ok ...int) error {
	for _, c := range ok {
		if resp.StatusCode == c {
			return nil
		}
	}
	err := transport.CheckError(resp, ok...)
	return classify(what, err)
}

// classify wraps err into its errdefs category, keeping the registry's
// message.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		cat := errdefs.ErrUnavailable
		switch code := terr.StatusCode; {
		case code == http.StatusUnauthorized:
			cat = errdefs.ErrUnauthenticated
		case code == http.StatusForbidden:
			cat = errdefs.ErrPermissionDenied
		case code == http.StatusNotFound:
			cat = errdefs.ErrNotFound
		case code == http.StatusBadRequest || code == http.StatusMethodNotAllowed:
			cat = errdefs.ErrInvalidArgument
		}
		for _, d := range terr.Errors {
			switch d.Code {
			case transport.UnauthorizedErrorCode:
				cat = errdefs.ErrUnauthenticated
			case transport.DeniedErrorCode:
				if terr.StatusCode == http.StatusUnauthorized {
					cat = errdefs.ErrUnauthenticated
				} else {
					cat = errdefs.ErrPermissionDenied
				}
			case transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.NameUnknownErrorCode:
				cat = errdefs.ErrNotFound
			}
		}
		hint := ""
		if cat == errdefs.ErrUnauthenticated {
			hint = " (missing or rejected credentials: log in to the registry)"
		}
		return fmt.Errorf("%s: %w%s: %v", what, cat, hint, err)
	}
	for _, cat := range []error{errdefs.ErrUnauthenticated, errdefs.ErrPermissionDenied, errdefs.ErrNotFound,
		errdefs.ErrUnavailable, errdefs.ErrFailedPrecondition, errdefs.ErrInvalidArgument} {
		if errors.Is(err, cat) {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return fmt.Errorf("%s: %w: %v", what, errdefs.ErrUnavailable, err)
}
