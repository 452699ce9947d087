// Package service owns the one images API the engine calls: it wires the
// content store, the overlay snapshotter, the image records, the garbage
// collector, the registry client and the credentials of one state root
// together, and offers Docker's image commands on top of them (pull, push,
// images, image inspect, tag, rmi, history, image prune, save, load,
// import, login, logout) plus what the container side needs of images: a
// writable root filesystem snapshot on an image's layers.
//
// Layout under the root directory:
//
//	content/    blobs by digest (image/content/local)
//	snapshots/  overlay snapshots, one per layer chain and per container
//	images/     the image records (image/store, bbolt)
//
// Everything that writes blobs or snapshots does it under a gc.Lease, and
// everything that deletes records (rmi, prune) runs a collection afterwards,
// so the blobs and layers nothing references any more are gone when the
// call returns.
package service

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/image/archive"
	"github.com/berth-dev/berth/image/content/local"
	"github.com/berth-dev/berth/image/credentials"
	"github.com/berth-dev/berth/image/gc"
	"github.com/berth-dev/berth/image/pull"
	"github.com/berth-dev/berth/image/registry"
	"github.com/berth-dev/berth/image/store"
	"github.com/berth-dev/berth/snapshot/overlay"
)

// Options configure Open.
type Options struct {
	// ConfigPath is the Docker config.json holding registry credentials
	// (auths and credential helpers); "" is Docker's default
	// ($DOCKER_CONFIG/config.json, else ~/.docker/config.json).
	ConfigPath string
	// CredentialHelperDir, when set, is where docker-credential-* programs
	// are looked up instead of $PATH.
	CredentialHelperDir string
	// Insecure lists registries ("host" or "host:port") spoken to over
	// plain http (--insecure-registry). Loopback hosts always are.
	Insecure []string
	// Mirrors are Docker Hub's pull-through mirrors ("scheme://host/",
	// --registry-mirror), tried in order before it.
	Mirrors []string
	// InUse returns the containers using the image id: rmi refuses to
	// delete such an image and prune keeps it. nil means none.
	InUse func(id digest.Digest) []string
}

// Service is the images API of one state root. It is safe for concurrent
// use.
type Service struct {
	root     string
	opts     Options
	content  *local.Store
	snaps    *overlay.Snapshotter
	images   *store.Store
	gc       *gc.Collector
	creds    *credentials.Store
	archiver *archive.Archiver
	// client is replaced at login and logout: a Client caches its
	// authenticated transports.
	client atomic.Pointer[registry.Client]
	// regMu guards opts.Insecure and opts.Mirrors, which a daemon
	// reload replaces.
	regMu sync.Mutex
}

// Open opens (creating it if needed) the image state under root. Only one
// Service may have root open at a time. Temporary snapshots a crashed pull
// left behind are removed.
func Open(root string, opts Options) (*Service, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	s := &Service{root: root, opts: opts}
	s.opts.Insecure = slices.Clone(opts.Insecure)
	s.opts.Mirrors = slices.Clone(opts.Mirrors)
	if s.content, err = local.NewStore(filepath.Join(root, "content")); err != nil {
		return nil, fmt.Errorf("open content store: %w", err)
	}
	if s.snaps, err = overlay.New(filepath.Join(root, "snapshots")); err != nil {
		return nil, fmt.Errorf("open snapshotter: %w", err)
	}
	s.images, err = store.Open(filepath.Join(root, "images"), s.content, store.Options{InUse: opts.InUse})
	if err != nil {
		s.snaps.Close()
		return nil, fmt.Errorf("open image store: %w", err)
	}
	s.gc = gc.New(s.content, s.snaps, s.images)
	var copts []credentials.StoreOption
	if opts.CredentialHelperDir != "" {
		copts = append(copts, credentials.WithHelperDir(opts.CredentialHelperDir))
	}
	s.creds = credentials.NewStore(opts.ConfigPath, copts...)
	s.archiver = &archive.Archiver{Content: s.content, Snapshots: s.snaps, Images: s.images, GC: s.gc}
	s.resetClient()

	ctx := context.Background()
	if err := errors.Join(pull.Cleanup(ctx, s.snaps), s.snaps.Cleanup(ctx)); err != nil {
		s.Close()
		return nil, fmt.Errorf("clean up after a crash: %w", err)
	}
	return s, nil
}

// resetClient makes a new registry client, dropping cached transports (and
// the credentials they hold).
func (s *Service) resetClient() {
	s.regMu.Lock()
	defer s.regMu.Unlock()
	s.client.Store(registry.New(registry.Options{
		Keychain: s.creds.Keychain(),
		Insecure: s.opts.Insecure,
		Mirrors:  s.opts.Mirrors,
	}))
}

// SetRegistries replaces Options.Insecure and Options.Mirrors (a daemon
// reload); pulls already running finish with the old ones.
func (s *Service) SetRegistries(insecure, mirrors []string) {
	s.regMu.Lock()
	s.opts.Insecure, s.opts.Mirrors = slices.Clone(insecure), slices.Clone(mirrors)
	s.regMu.Unlock()
	s.resetClient()
}

// Root is the state root directory.
func (s *Service) Root() string { return s.root }

// Images is the image record store (for callers that need more than this
// API, e.g. the builder).
func (s *Service) Images() *store.Store { return s.images }

// Collect runs a garbage collection now.
func (s *Service) Collect(ctx context.Context) (gc.Result, error) { return s.gc.Collect(ctx) }

// Close closes the image records and the snapshotter. Data stays on disk.
func (s *Service) Close() error {
	return errors.Join(s.images.Close(), s.snaps.Close())
}
