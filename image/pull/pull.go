// Package pull owns pulling an image from a registry into the content
// store and the snapshotter: resolve the reference, pick the platform's
// manifest, fetch manifest and config, then download and unpack the layers.
//
// # Pipeline
//
// Every layer that is not unpacked yet is a job; up to
// Options.Concurrency jobs run at once, started in layer order. A job:
//
//  1. Prepares a temporary active snapshot with no parent (a bare
//     directory) to unpack into.
//  2. Opens the content store's Writer for the blob. If the blob is there
//     already, it is unpacked from the store; if a previous pull left part
//     of it, the rest is downloaded with a Range request, committed, and
//     unpacked from the store.
//  3. Otherwise the HTTP body is teed into the Writer (which hashes it) and
//     into the decompressor while it arrives; the decompressed tar flows
//     through a buffered in-memory pipe into snapshot/apply, on another
//     goroutine, which hashes it (the diffID) and writes the files. So one
//     layer uses two cores (inflate | untar) and several layers overlap.
//  4. Commits the blob (size and digest verified; a mismatch fails the
//     layer and nothing becomes visible) and checks the diffID against the
//     config's rootfs.diff_ids.
//
// Why each layer is unpacked into its own directory, in parallel, rather
// than onto its parent: with overlayfs a layer's snapshot is only its own
// diff (the upper directory), and applying a tar in overlay mode never
// reads the layers below: whiteouts become 0/0 character devices and
// opaque markers xattrs, parents are created as needed, and hardlinks may
// only point at files earlier in the same tar (a tar can only link to what
// it contains; Docker's overlay2 driver unpacks into the bare diff
// directory the same way). Only the parent relation, i.e. the commit order,
// depends on the layers below. So unpacking runs out of order and in
// parallel, and a single committer goroutine promotes the layers in order:
// Prepare(chain N, parent chain N-1), swap the unpacked directory into its
// upper directory with one renameat2(RENAME_EXCHANGE), Commit under the
// chain id, Remove the temporary snapshot. If the exchange is refused (a
// filesystem without it), the layer is applied again from the content store
// into the upper directory.
//
// Snapshots are named by OCI chain id: a committed snapshot of that name
// means "already unpacked" and its layer is skipped without a download
// (Already exists). Concurrent pulls of one blob download it once: the
// content store lets one Writer per ref at a time, the other waits and
// unpacks from the store. A failed or cancelled pull removes its temporary
// snapshots; its verified, committed layers stay and are reused by the
// retry, and a blob it was downloading resumes from the partial ingest.
// Temporary snapshots left by a crash carry LabelTemp; Cleanup removes
// them.
package pull

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/registry"
	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/apply"
)

// DefaultConcurrency is how many layers are fetched and unpacked at once.
const DefaultConcurrency = 4

// MaxConfigSize caps an image config read into memory.
const MaxConfigSize = 16 << 20

// DefaultMaxLayerSize caps the uncompressed size of one layer (a
// decompression bomb guard): 64 GiB.
const DefaultMaxLayerSize = 64 << 30

// Options configures Pull. Registry, Content and Snapshots are required.
type Options struct {
	Registry  *registry.Client
	Content   content.Store
	Snapshots snapshot.Snapshotter
	// Platform is "os/arch[/variant]" as for --platform; "" is the host's.
	// An image index is resolved to this platform's manifest; a single
	// manifest whose config names another platform is refused when
	// Platform was given.
	Platform string
	// Concurrency is the number of layers in flight (default 4).
	Concurrency int
	// Progress, if set, receives per-layer events, one at a time.
	Progress func(Event)
	// MaxLayerSize caps one layer's uncompressed size (default 64 GiB).
	MaxLayerSize int64
	// Apply tunes unpacking (device policy, id mapping, caps). Its
	// Overlay field is always set: snapshots are overlay layers.
	Apply apply.Options
}

// Result describes a pulled image.
type Result struct {
	Ref reference.Named
	// Index is the image index the reference named, when it named one.
	Index *ocispec.Descriptor
	// Manifest is the image manifest pulled (for Index's platform).
	Manifest ocispec.Descriptor
	// Config is the image config.
	Config   ocispec.Descriptor
	Platform ocispec.Platform
	// Layers are the manifest's layer descriptors and DiffIDs the
	// config's, in order.
	Layers  []ocispec.Descriptor
	DiffIDs []digest.Digest
	// ChainID names the committed snapshot of the top layer: the image's
	// root filesystem ("" for an image without layers).
	ChainID digest.Digest
	// Existing counts layers that were unpacked already; FromStore those
	// unpacked from blobs already in the content store.
	Existing, FromStore int
	// Downloaded is the number of blob bytes fetched from the network;
	// Unpacked the number of uncompressed tar bytes applied.
	Downloaded, Unpacked int64
	Duration             time.Duration
}

// BytesPerSecond is the compressed download rate over the whole pull.
func (r Result) BytesPerSecond() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Downloaded) / r.Duration.Seconds()
}

// Pull fetches ref into opts.Content and unpacks it into opts.Snapshots.
// See the package documentation for the pipeline and its guarantees.
func Pull(ctx context.Context, ref reference.Named, opts Options) (Result, error) {
	start := time.Now()
	if opts.Registry == nil || opts.Content == nil || opts.Snapshots == nil {
		return Result{}, fmt.Errorf("pull %s: Registry, Content and Snapshots are required: %w", ref, errdefs.ErrInvalidArgument)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.MaxLayerSize <= 0 {
		opts.MaxLayerSize = DefaultMaxLayerSize
	}
	opts.Apply.Overlay = true
	plat, err := ParsePlatform(opts.Platform)
	if err != nil {
		return Result{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	res, err := pull(ctx, ref, plat, opts)
	res.Duration = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("pull %s: %w", reference.FamiliarString(ref), err)
	}
	return res, nil
}

// pull tries ref's mirrors in order, then its registry, as Docker does:
// any failure on a mirror (unreachable, image missing, bad data) moves on
// to the next; what was fetched and verified stays in the content store.
func pull(ctx context.Context, ref reference.Named, plat ocispec.Platform, opts Options) (Result, error) {
	var mirrorErrs []string
	for _, m := range opts.Registry.Mirrors(ref) {
		repo, err := opts.Registry.MirrorRepository(ctx, ref, m)
		if err == nil {
			var res Result
			if res, err = pullFrom(ctx, repo, ref, plat, opts); err == nil {
				return res, nil
			}
		}
		if ctx.Err() != nil {
			return Result{Ref: ref, Platform: plat}, err
		}
		mirrorErrs = append(mirrorErrs, fmt.Sprintf("mirror %s: %v", m, err))
	}
	repo, err := opts.Registry.Repository(ctx, ref)
	var res Result
	if err == nil {
		res, err = pullFrom(ctx, repo, ref, plat, opts)
	} else {
		res = Result{Ref: ref, Platform: plat}
	}
	if err != nil && len(mirrorErrs) > 0 {
		err = fmt.Errorf("%w (after the mirrors failed: %s)", err, strings.Join(mirrorErrs, "; "))
	}
	return res, err
}

// pullFrom pulls ref from repo.
func pullFrom(ctx context.Context, repo *registry.Repository, ref reference.Named, plat ocispec.Platform, opts Options) (Result, error) {
	res := Result{Ref: ref, Platform: plat}
	tagOrDigest := ref.Tag()
	if ref.Digest() != "" {
		tagOrDigest = ref.Digest().String()
	}
	if tagOrDigest == "" {
		tagOrDigest = reference.DefaultTag
	}
	desc, b, err := repo.Resolve(ctx, tagOrDigest)
	if err != nil {
		return res, err
	}
	if err := storeBytes(ctx, opts.Content, desc, b); err != nil {
		return res, err
	}
	fromIndex := false
	switch desc.MediaType {
	case ocispec.MediaTypeImageIndex, registry.MediaTypeDockerManifestList:
		var idx ocispec.Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return res, fmt.Errorf("image index %s: %w: %v", desc.Digest, errdefs.ErrInvalidArgument, err)
		}
		sel, err := selectManifest(idx.Manifests, plat)
		if err != nil {
			return res, fmt.Errorf("image index %s: %w", desc.Digest, err)
		}
		indexDesc := desc
		res.Index = &indexDesc
		if b, err = repo.FetchManifest(ctx, sel); err != nil {
			return res, err
		}
		desc = sel
		if err := storeBytes(ctx, opts.Content, desc, b); err != nil {
			return res, err
		}
		fromIndex = true
	case ocispec.MediaTypeImageManifest, registry.MediaTypeDockerManifest:
	case "application/vnd.docker.distribution.manifest.v1+json", "application/vnd.docker.distribution.manifest.v1+prettyjws":
		return res, fmt.Errorf("manifest %s: Docker image manifest schema 1 is not supported: %w", desc.Digest, errdefs.ErrNotImplemented)
	default:
		return res, fmt.Errorf("manifest %s: media type %q is not an image manifest or index: %w", desc.Digest, desc.MediaType, errdefs.ErrNotImplemented)
	}
	res.Manifest = desc
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return res, fmt.Errorf("manifest %s: %w: %v", desc.Digest, errdefs.ErrInvalidArgument, err)
	}
	if m.MediaType != "" && m.MediaType != desc.MediaType && desc.MediaType != "" {
		return res, fmt.Errorf("manifest %s: mediaType %q where %q was expected: %w", desc.Digest, m.MediaType, desc.MediaType, errdefs.ErrInvalidArgument)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return res, fmt.Errorf("manifest %s: config digest: %w: %v", desc.Digest, errdefs.ErrInvalidArgument, err)
	}
	res.Config = m.Config
	res.Layers = m.Layers

	_, err = opts.Content.Info(ctx, m.Config.Digest)
	known := err == nil
	cb, err := fetchSmall(ctx, repo, opts.Content, m.Config, MaxConfigSize)
	if err != nil {
		return res, fmt.Errorf("config: %w", err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return res, fmt.Errorf("config %s: %w: %v", m.Config.Digest, errdefs.ErrInvalidArgument, err)
	}
	if !fromIndex && opts.Platform != "" && cfg.Architecture != "" {
		have := normalize(cfg.Platform)
		if have.OS != plat.OS || have.Architecture != plat.Architecture || (plat.Variant != "" && have.Variant != "" && have.Variant != plat.Variant) {
			return res, fmt.Errorf("image is for %s, not the requested %s: %w", FormatPlatform(have), FormatPlatform(plat), errdefs.ErrNotFound)
		}
	}
	if !fromIndex && cfg.OS != "" {
		res.Platform = normalize(cfg.Platform)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return res, fmt.Errorf("manifest %s has %d layers but config %s has %d diff_ids: %w",
			desc.Digest, len(m.Layers), m.Config.Digest, len(cfg.RootFS.DiffIDs), errdefs.ErrInvalidArgument)
	}
	for i, l := range m.Layers {
		if err := l.Digest.Validate(); err != nil {
			return res, fmt.Errorf("layer %d: digest: %w: %v", i, errdefs.ErrInvalidArgument, err)
		}
		if err := cfg.RootFS.DiffIDs[i].Validate(); err != nil {
			return res, fmt.Errorf("layer %d: diff_id: %w: %v", i, errdefs.ErrInvalidArgument, err)
		}
		if err := checkLayerType(l.MediaType); err != nil {
			return res, fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
		}
	}
	res.DiffIDs = cfg.RootFS.DiffIDs
	chains := ChainIDs(res.DiffIDs)
	if len(chains) > 0 {
		res.ChainID = chains[len(chains)-1]
	}
	u := &unpacker{opts: opts, repo: repo, prog: &progress{fn: opts.Progress}, known: known}
	err = u.run(ctx, m.Layers, res.DiffIDs, chains)
	res.Existing, res.FromStore = u.existing, int(u.fromStore.Load())
	res.Downloaded, res.Unpacked = u.downloaded.Load(), u.unpacked.Load()
	return res, err
}

// checkLayerType accepts the layer media types Docker pulls; the
// compression itself is sniffed from the bytes.
func checkLayerType(mt string) error {
	switch mt {
	case ocispec.MediaTypeImageLayer, ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageLayerZstd,
		ocispec.MediaTypeImageLayerNonDistributable, ocispec.MediaTypeImageLayerNonDistributableGzip, //nolint:staticcheck // still in the wild
		ocispec.MediaTypeImageLayerNonDistributableZstd, //nolint:staticcheck
		registry.MediaTypeDockerLayer, registry.MediaTypeDockerForeignLayer, "":
		return nil
	}
	if strings.Contains(mt, "+encrypted") {
		return fmt.Errorf("encrypted layer %q: %w", mt, errdefs.ErrNotImplemented)
	}
	return fmt.Errorf("layer media type %q: %w", mt, errdefs.ErrNotImplemented)
}

// ChainIDs returns the OCI chain id of every prefix of diffIDs:
// ChainID(L0) = DiffID(L0), ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)).
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}

// storeBytes stores b (already verified against desc) in the content
// store.
func storeBytes(ctx context.Context, cs content.Store, desc ocispec.Descriptor, b []byte) error {
	if _, err := cs.Info(ctx, desc.Digest); err == nil {
		return nil
	}
	return content.WriteBlob(ctx, cs, ingestRef(desc.Digest), bytes.NewReader(b), desc)
}

// fetchSmall returns the blob desc from the content store, downloading it
// there first when missing.
func fetchSmall(ctx context.Context, repo *registry.Repository, cs content.Store, desc ocispec.Descriptor, max int64) ([]byte, error) {
	if desc.Size > max {
		return nil, fmt.Errorf("blob %s: %d bytes, more than %d: %w", desc.Digest, desc.Size, max, errdefs.ErrFailedPrecondition)
	}
	if b, err := content.ReadBlob(ctx, cs, desc, max); err == nil {
		return b, nil
	}
	body, err := repo.OpenBlob(ctx, desc, 0)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	if err := content.WriteBlob(ctx, cs, ingestRef(desc.Digest), body, desc); err != nil {
		return nil, err
	}
	return content.ReadBlob(ctx, cs, desc, max)
}

// ingestRef names the content store ingest of a blob: one per digest, so
// concurrent pulls of one blob share it (and wait for each other).
func ingestRef(d digest.Digest) string { return "pull-" + d.String() }

// unpacker runs the layer jobs of one pull.
type unpacker struct {
	opts Options
	repo *registry.Repository
	prog *progress
	// known: the image's config was in the content store before the
	// pull. When all its layers and their blobs are there too, the
	// layers get no events, as Docker prints none for an image it has.
	known bool

	existing   int
	fromStore  atomic.Int32
	downloaded atomic.Int64
	unpacked   atomic.Int64
}

// job is one layer to fetch and unpack.
type job struct {
	i      int
	desc   ocispec.Descriptor
	diffID digest.Digest
	chain  digest.Digest // "": the layer is unpacked already, only its blob is fetched
	parent digest.Digest // "" for the first layer
	size   int64         // uncompressed bytes, once unpacked

	tmpKey string // the temporary snapshot unpacked into ("" once consumed)
	fsDir  string // its directory
	ready  chan struct{}
	err    error
}

func (u *unpacker) event(j *job, st Status, cur, total int64) {
	u.prog.emit(Event{Layer: j.i, Digest: j.desc.Digest, Status: st, Current: cur, Total: total})
}

func (u *unpacker) run(ctx context.Context, layers []ocispec.Descriptor, diffIDs, chains []digest.Digest) error {
	sn := u.opts.Snapshots
	top := -1 // the highest layer whose chain is unpacked already
	for i := len(chains) - 1; i >= 0; i-- {
		if info, err := sn.Stat(ctx, chains[i].String()); err == nil && info.Kind == snapshot.KindCommitted {
			top = i
			break
		}
	}
	// A layer unpacked already may lack its blob (the image came from
	// load, import or a build, which keep other blobs): fetch it, without
	// unpacking, so that the image pulled can be pushed or saved.
	var fetches []*job
	for i := 0; i <= top; i++ {
		if _, err := u.opts.Content.Info(ctx, layers[i].Digest); errdefs.IsNotFound(err) {
			fetches = append(fetches, &job{i: i, desc: layers[i], ready: make(chan struct{})})
		}
	}
	if !u.known || top < len(layers)-1 || len(fetches) > 0 {
		for i := 0; i <= top; i++ {
			u.prog.emit(Event{Layer: i, Digest: layers[i].Digest, Status: StatusAlreadyExists})
		}
	}
	u.existing = top + 1
	var jobs []*job
	for i := top + 1; i < len(layers); i++ {
		j := &job{i: i, desc: layers[i], diffID: diffIDs[i], chain: chains[i], ready: make(chan struct{})}
		if i > 0 {
			j.parent = chains[i-1]
		}
		jobs = append(jobs, j)
		u.event(j, StatusPullingFSLayer, 0, 0)
	}
	if len(jobs)+len(fetches) == 0 {
		return nil
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pullID := newPullID()
	defer releasePullID(pullID)
	var wg sync.WaitGroup
	// The dispatcher starts jobs in layer order, Concurrency at a time, so
	// the committer is fed the layers it needs first.
	sem := make(chan struct{}, u.opts.Concurrency)
	acquire := func(j *job) bool {
		select {
		case sem <- struct{}{}:
			return true
		default:
		}
		if j.chain != "" { // a layer queued behind Concurrency others
			u.event(j, StatusWaiting, 0, 0)
		}
		select {
		case sem <- struct{}{}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	wg.Go(func() {
		for _, j := range append(jobs, fetches...) { // the blobs alone last
			if !acquire(j) {
				j.err = context.Cause(ctx)
				close(j.ready)
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				if j.chain == "" {
					j.err = u.fetch(ctx, j)
				} else {
					j.err = u.unpack(ctx, pullID, j)
				}
				if j.err != nil {
					j.err = fmt.Errorf("layer %d (%s): %w", j.i, j.desc.Digest, j.err)
					u.prog.emit(Event{Layer: j.i, Digest: j.desc.Digest, Status: StatusFailed, Err: j.err})
					cancel(j.err)
				}
				close(j.ready)
			})
		}
	})

	// The committer: promote the layers in order.
	var err error
	for _, j := range jobs {
		<-j.ready
		if j.err != nil {
			err = j.err
			break
		}
		if err = u.promote(ctx, pullID, j); err != nil {
			err = fmt.Errorf("layer %d (%s): %w", j.i, j.desc.Digest, err)
			break
		}
		// After the exchange the temporary snapshot holds an empty
		// directory: remove it now, while later layers still unpack, rather
		// than on the pull's tail. A failure leaves tmpKey set for the
		// removal below, which reports it.
		if j.tmpKey != "" && sn.Remove(ctx, j.tmpKey) == nil {
			j.tmpKey = ""
		}
		u.event(j, StatusPullComplete, 0, 0)
	}
	for _, j := range fetches {
		if err != nil {
			break
		}
		<-j.ready
		err = j.err
	}
	if err != nil {
		// Report the first layer's own failure rather than the
		// cancellations it caused in others.
		cancel(err)
		if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) && errors.Is(err, context.Canceled) {
			err = c
		}
	}
	wg.Wait()
	// Remove what is left of the temporary snapshots (all of them on
	// failure; none on success).
	for _, j := range jobs {
		if j.tmpKey != "" {
			if rerr := sn.Remove(context.WithoutCancel(ctx), j.tmpKey); rerr != nil && err == nil {
				err = fmt.Errorf("layer %d: remove temporary snapshot: %w", j.i, rerr)
			}
		}
	}
	return err
}
