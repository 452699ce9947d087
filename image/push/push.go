// Package push owns uploading an image from the content store to an OCI
// distribution registry, as `docker push` does: every blob the registry
// lacks is uploaded (the config, then the layers, in parallel), the image
// manifest last; for an image index, each platform manifest with its blobs
// first, then the index. Blobs the repository already has are skipped (a
// HEAD first), and blobs the registry holds in another repository the
// caller names are mounted instead of uploaded. Small blobs are uploaded
// in one PUT, large ones in PATCH chunks with Content-Range; requests that
// fail with 5xx, 429 or a dropped connection are retried with backoff, a
// chunked upload resuming where the registry says it stopped.
//
// Progress is reported per layer in Docker's words (Preparing, Waiting,
// Pushing n/total, Pushed, Layer already exists, Mounted from <repo>), and
// credentials come from a go-containerregistry keychain (e.g.
// credentials.Store.Keychain).
package push

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/credentials"
	"github.com/berth-dev/berth/image/progress"
	"github.com/berth-dev/berth/image/reference"
)

// Media types of manifests this package understands.
const (
	mediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// Defaults of Options.
const (
	DefaultChunkSize   = 16 << 20
	DefaultConcurrency = 5 // Docker's max-concurrent-uploads
	DefaultRetries     = 4
	DefaultRetryDelay  = 250 * time.Millisecond
	// maxManifestSize bounds a manifest or index read into memory.
	maxManifestSize = 8 << 20
)

// Options tune Push. The zero value pushes anonymously with the defaults.
type Options struct {
	// Keychain supplies credentials for the registry (anonymous when nil).
	Keychain authn.Keychain
	// Transport carries the requests (http.DefaultTransport when nil);
	// set one trusting a private CA for such registries.
	Transport http.RoundTripper
	// Insecure allows plain HTTP to this registry (an --insecure-registry);
	// loopback and private addresses are allowed it anyway.
	Insecure bool
	// Progress receives the per-layer events (dropped when nil).
	Progress progress.Reporter
	// MountFrom are repositories of the same registry (paths, like
	// "library/busybox") that may hold the image's blobs: a blob missing
	// from the target is mounted from the first one that has it.
	MountFrom []string
	// ChunkSize: a blob up to this size is uploaded in one PUT, a larger
	// one in PATCH chunks of this size (DefaultChunkSize when 0).
	ChunkSize int64
	// Concurrency is the number of blobs uploaded at once
	// (DefaultConcurrency when 0).
	Concurrency int
	// Retries is how often a failed request is retried (DefaultRetries
	// when 0; negative for none), RetryDelay the first wait, doubled at
	// each retry (DefaultRetryDelay when 0).
	Retries    int
	RetryDelay time.Duration
}

func (o Options) withDefaults() Options {
	if o.Progress == nil {
		o.Progress = progress.Discard
	}
	if o.Transport == nil {
		o.Transport = http.DefaultTransport
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = DefaultRetryDelay
	}
	return o
}

// pusher is one Push.
type pusher struct {
	opts     Options
	repo     string // path of the target repository
	client   *client
	provider content.Provider
	sem      chan struct{}

	mu    sync.Mutex
	blobs map[digest.Digest]*blobJob // each blob is pushed once per Push
}

// blobJob is one blob's push, shared by every manifest listing it.
type blobJob struct {
	done chan struct{}
	err  error
}

// Push uploads the image target (an image manifest or index, with
// everything it references, read from provider) to the repository of ref,
// and tags it with ref's tag (or stores it under ref's digest only, which
// must then equal target's).
//
// Errors are in errdefs' categories: ErrUnauthenticated for missing or
// rejected credentials, ErrPermissionDenied when the registry denies the
// push, ErrNotFound for content missing locally, ErrUnavailable for a
// registry that keeps failing, ErrInvalidArgument for a bad ref or target.
func Push(ctx context.Context, ref reference.Named, target ocispec.Descriptor, provider content.Provider, opts Options) error {
	opts = opts.withDefaults()
	if ref.IsZero() {
		return fmt.Errorf("push: empty reference: %w", errdefs.ErrInvalidArgument)
	}
	if d := ref.Digest(); d != "" && d != target.Digest {
		return fmt.Errorf("push %s: reference digest differs from the image's %s: %w", ref, target.Digest, errdefs.ErrInvalidArgument)
	}
	host := registryHost(ref.Domain())
	auth := authn.Anonymous
	if opts.Keychain != nil {
		reg, err := name.NewRegistry(host, name.WeakValidation)
		if err != nil {
			return fmt.Errorf("push %s: %v: %w", ref, err, errdefs.ErrInvalidArgument)
		}
		if auth, err = authn.Resolve(ctx, opts.Keychain, reg); err != nil {
			return fmt.Errorf("push %s: credentials: %w", ref, err)
		}
	}
	scopes := []string{"repository:" + ref.Path() + ":pull,push"}
	for _, from := range opts.MountFrom {
		if from != ref.Path() {
			scopes = append(scopes, "repository:"+from+":pull")
		}
	}
	t, err := credentials.NewTransport(ctx, host, auth, credentials.TransportOptions{Base: opts.Transport, Insecure: opts.Insecure, Scopes: scopes})
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	p := &pusher{
		opts:     opts,
		repo:     ref.Path(),
		client:   &client{t: t, http: &http.Client{Transport: t}, retries: opts.Retries, delay: opts.RetryDelay},
		provider: provider,
		sem:      make(chan struct{}, opts.Concurrency),
		blobs:    map[digest.Digest]*blobJob{},
	}
	opts.Progress.Report(progress.Event{Status: "The push refers to repository [" + ref.Name() + "]"})

	tag := ref.Tag()
	if ref.Digest() != "" {
		tag = ""
	}
	if err := p.pushManifest(ctx, target, tag); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	label := tag
	if label == "" {
		label = target.Digest.String()
	}
	opts.Progress.Report(progress.Event{Status: fmt.Sprintf("%s: digest: %s size: %d", label, target.Digest, target.Size)})
	return nil
}

// registryHost is the host serving a reference's domain.
func registryHost(domain string) string {
	if domain == "docker.io" {
		return "registry-1.docker.io"
	}
	return domain
}

// pushManifest pushes what desc references, then desc itself under tag
// ("" for its digest).
func (p *pusher) pushManifest(ctx context.Context, desc ocispec.Descriptor, tag string) error {
	b, err := content.ReadBlob(ctx, p.provider, desc, maxManifestSize)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	switch desc.MediaType {
	case ocispec.MediaTypeImageIndex, mediaTypeDockerManifestList:
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("index %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
		}
		for _, child := range idx.Manifests {
			if err := p.pushChild(ctx, child); err != nil {
				return err
			}
		}
	case ocispec.MediaTypeImageManifest, mediaTypeDockerManifest:
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("manifest %s: %v: %w", desc.Digest, err, errdefs.ErrInvalidArgument)
		}
		if err := p.pushBlobs(ctx, m); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: unsupported manifest media type %q: %w", desc.Digest, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	ref := tag
	if ref == "" {
		ref = desc.Digest.String()
	}
	return p.client.putManifest(ctx, p.repo, ref, desc, b)
}

// pushChild pushes one manifest of an index by digest, unless the
// repository has it already; a child missing locally is acceptable only
// when the registry has it.
func (p *pusher) pushChild(ctx context.Context, child ocispec.Descriptor) error {
	exists, err := p.client.manifestExists(ctx, p.repo, child)
	if err != nil {
		return err
	}
	if exists {
		return nil
	}
	if _, err := p.provider.Info(ctx, child.Digest); errdefs.IsNotFound(err) {
		return fmt.Errorf("manifest %s is neither in the local store nor in the repository: %w", child.Digest, errdefs.ErrNotFound)
	}
	return p.pushManifest(ctx, child, "")
}

// pushBlobs pushes a manifest's config and layers, all in parallel (at
// most Concurrency uploads at a time). Layers report progress; the config
// does not, as in Docker.
func (p *pusher) pushBlobs(ctx context.Context, m ocispec.Manifest) error {
	for _, l := range m.Layers {
		p.mu.Lock()
		_, seen := p.blobs[l.Digest]
		p.mu.Unlock()
		if !seen { // a layer shared by two platforms shows once
			p.opts.Progress.Report(progress.Event{ID: shortID(l.Digest), Status: "Preparing"})
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(m.Layers)+1)
	start := func(desc ocispec.Descriptor, report bool) {
		go func() {
			err := p.pushBlobOnce(ctx, desc, report)
			if err != nil {
				cancel()
			}
			errs <- err
		}()
	}
	start(m.Config, false)
	for _, l := range m.Layers {
		start(l, true)
	}
	var first error
	for range len(m.Layers) + 1 {
		if err := <-errs; err != nil && (first == nil || errdefs.IsCanceled(first)) {
			first = err
		}
	}
	return first
}

// pushBlobOnce pushes desc, or waits for the push of the same blob that
// another manifest of this Push started.
func (p *pusher) pushBlobOnce(ctx context.Context, desc ocispec.Descriptor, report bool) error {
	p.mu.Lock()
	job, ok := p.blobs[desc.Digest]
	if !ok {
		job = &blobJob{done: make(chan struct{})}
		p.blobs[desc.Digest] = job
	}
	p.mu.Unlock()
	if ok {
		select {
		case <-job.done:
			return job.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	job.err = p.pushBlob(ctx, desc, report)
	close(job.done)
	return job.err
}

// pushBlob skips, mounts or uploads one blob.
func (p *pusher) pushBlob(ctx context.Context, desc ocispec.Descriptor, report bool) error {
	id := shortID(desc.Digest)
	say := func(status string, cur, total int64) {
		if report {
			p.opts.Progress.Report(progress.Event{ID: id, Status: status, Current: cur, Total: total})
		}
	}
	select {
	case p.sem <- struct{}{}:
	default:
		say("Waiting", 0, 0)
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() { <-p.sem }()

	err := p.uploadBlob(ctx, desc, say)
	if err != nil && report {
		p.opts.Progress.Report(progress.Event{ID: id, Err: err})
	}
	return err
}

func (p *pusher) uploadBlob(ctx context.Context, desc ocispec.Descriptor, say func(string, int64, int64)) error {
	exists, err := p.client.blobExists(ctx, p.repo, desc)
	if err != nil {
		return err
	}
	if exists {
		say("Layer already exists", 0, 0)
		return nil
	}
	var location string
	for _, from := range p.opts.MountFrom {
		if from == p.repo {
			continue
		}
		mounted, loc, err := p.client.mount(ctx, p.repo, from, desc)
		if err != nil {
			return err
		}
		if mounted {
			say("Mounted from "+from, 0, 0)
			return nil
		}
		if loc != "" {
			// The registry opened an upload session instead: keep the
			// latest for the upload, cancel the one before.
			if location != "" {
				p.client.cancelUpload(ctx, location)
			}
			location = loc
		}
	}
	ra, err := p.provider.ReaderAt(ctx, desc)
	if err != nil {
		return err // the store's error names the blob
	}
	defer ra.Close()
	onProgress := func(n int64) { say("Pushing", n, desc.Size) }
	if err := p.client.upload(ctx, p.repo, desc, ra, location, p.opts.ChunkSize, onProgress); err != nil {
		return err
	}
	say("Pushed", 0, 0)
	return nil
}

// shortID is how Docker names a layer in progress output: the first 12
// hex digits of its digest.
func shortID(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > 12 {
		e = e[:12]
	}
	return e
}
