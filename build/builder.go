// Package build owns Dockerfile builds: it parses a Dockerfile with
// BuildKit's parser, runs its stages step by step on overlay snapshots
// (RUN through berth-runtime, COPY/ADD from the context or another
// stage), records each layer step as an image, and keeps the cache that
// maps a step (its parent, instruction, args and the content of the files
// it reads) to the image it made.
package build

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/compression"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/service"
)

// Config configures a Builder.
type Config struct {
	// Images is the engine's image service.
	Images *service.Service
	// Runtime is the berth-runtime binary RUN steps use.
	Runtime string
	// Dir holds the builder's state: its cache and the temporary contexts
	// and bundles of builds under way.
	Dir string
	// RunRoot is the runtime's state root for RUN steps (under the exec
	// root: it must vanish on reboot).
	RunRoot string
	// CgroupParent is where RUN steps' cgroups go ("" = the engine's
	// default).
	CgroupParent string
	// MaxContextSize caps a build context (default DefaultMaxContextSize).
	MaxContextSize int64
}

// Builder runs Dockerfile builds. It is safe for concurrent use.
type Builder struct {
	cfg   Config
	cache *cache
}

// New opens the builder's state in cfg.Dir, dropping what builds
// interrupted by a crash left behind.
func New(cfg Config) (*Builder, error) {
	if cfg.Images == nil || cfg.Runtime == "" || cfg.Dir == "" || cfg.RunRoot == "" {
		return nil, errors.New("build: images, runtime, dir and run root are required")
	}
	if cfg.MaxContextSize <= 0 {
		cfg.MaxContextSize = DefaultMaxContextSize
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, "tmp"), cfg.RunRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	cleanupTmp(filepath.Join(cfg.Dir, "tmp"))
	c, err := openCache(filepath.Join(cfg.Dir, "cache.db"))
	if err != nil {
		return nil, err
	}
	return &Builder{cfg: cfg, cache: c}, nil
}

// PruneCache is `docker builder prune`. The cache maps build steps to the
// images they made, which stay images (image prune and rmi reclaim their
// space): pruning forgets steps, so that later builds run them again.
// With all it forgets every step, else those whose image is gone.
func (b *Builder) PruneCache(ctx context.Context, all bool) ([]string, error) {
	return b.cache.prune(func(_, id string) bool {
		if all {
			return true
		}
		_, err := b.cfg.Images.Get(ctx, id)
		return errdefs.IsNotFound(err)
	})
}

// Close closes the cache.
func (b *Builder) Close() error { return b.cache.close() }

// Options are one build's parameters (the API's /build query).
type Options struct {
	// Dockerfile is the Dockerfile's path in the context ("Dockerfile").
	Dockerfile string
	// Tags name the result ("repo[:tag]").
	Tags []string
	// BuildArgs are --build-arg values; a nil value takes the variable
	// from the environment, which the daemon does not have: it is unset.
	BuildArgs map[string]*string
	// Labels are added to the final image.
	Labels map[string]string
	// Target is the stage to build (default the last).
	Target string
	// NoCache builds every step again.
	NoCache bool
	// Pull pulls every FROM image even when present.
	Pull bool
	// CacheFrom are images whose steps may be reused.
	CacheFrom []string
	// NetworkMode is the default network of RUN steps: "" or "default"
	// (none: the engine has no networks yet), "none" or "host".
	NetworkMode string
	// Secrets says the body starts with a tar of the build's secrets
	// (one file per secret, named by its id) before the context tar:
	// how `berth build --secret` sends them (see secretStore).
	Secrets bool
	// Platform is the target platform ("os/arch[/variant]", docker build
	// --platform): of the stages without FROM --platform, and
	// TARGETPLATFORM. "" is the host's.
	Platform string
}

// Result is a finished build.
type Result struct {
	// ID is the image ID.
	ID string
}

// Build runs the Dockerfile of the context tar r and returns the image it
// made, tagged with o.Tags. out receives the progress as dockerd's classic
// builder words it ("Step 1/3 : FROM busybox\n", RUN output, " --->
// Using cache\n"). On error nothing is tagged; the steps that finished
// stay cached.
func (b *Builder) Build(ctx context.Context, o Options, r io.Reader, out io.Writer) (Result, error) {
	if out == nil {
		out = io.Discard
	}
	var tags []reference.Named
	for _, t := range o.Tags {
		n, err := reference.Parse(t)
		if err != nil {
			return Result{}, fmt.Errorf("invalid tag %q: %w", t, err)
		}
		if n.Digest() != "" {
			return Result{}, fmt.Errorf("invalid tag %q: a tag cannot carry a digest: %w", t, errdefs.ErrInvalidArgument)
		}
		tags = append(tags, n)
	}
	dir, err := os.MkdirTemp(filepath.Join(b.cfg.Dir, "tmp"), "ctx-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	var secrets *secretStore
	if o.Secrets {
		// Taken off the stream before the context: they never land in
		// it, so no COPY, hash or key can see them.
		dr, _, err := compression.DecompressStream(r)
		if err != nil {
			return Result{}, fmt.Errorf("read build context: %w", err)
		}
		defer dr.Close()
		if secrets, err = newSecretStore(filepath.Join(b.cfg.Dir, "tmp")); err != nil {
			return Result{}, err
		}
		defer secrets.close()
		if err := secrets.read(dr); err != nil {
			return Result{}, err
		}
		r = dr
	}
	if err := extractContext(ctx, dir, r, b.cfg.MaxContextSize); err != nil {
		return Result{}, err
	}
	df, err := readDockerfile(dir, o.Dockerfile)
	if err != nil {
		return Result{}, err
	}
	p, err := parse(df, o.Dockerfile)
	if err != nil {
		return Result{}, err
	}
	j := &job{b: b, o: o, p: p, ctxDir: dir, out: &syncWriter{w: out}, usedArgs: map[string]bool{}, secrets: secrets}
	id, err := j.run(ctx)
	if err != nil {
		return Result{}, err
	}
	for _, n := range tags {
		if cur, err := b.cfg.Images.Get(ctx, n.String()); err == nil && cur.ID.String() == id {
			continue // already there: no write
		}
		if err := b.cfg.Images.Tag(ctx, id, n.String()); err != nil {
			return Result{}, fmt.Errorf("tag %s: %w", reference.FamiliarString(n), err)
		}
	}
	var unused []string
	for k := range o.BuildArgs {
		if !j.usedArgs[k] && !builtinArgs[k] {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		slices.Sort(unused)
		fmt.Fprintf(j.out, "[Warning] One or more build-args [%s] were not consumed\n", strings.Join(unused, " "))
	}
	fmt.Fprintf(j.out, "Successfully built %s\n", shortID(id))
	for _, n := range tags {
		fmt.Fprintf(j.out, "Successfully tagged %s\n", reference.FamiliarString(n))
	}
	return Result{ID: id}, nil
}

// parsed is a parsed Dockerfile.
type parsed struct {
	stages   []instructions.Stage
	metaArgs []instructions.ArgCommand
	escape   rune
	name     string
}

// parse parses a Dockerfile; errors name the file and line.
func parse(df []byte, name string) (*parsed, error) {
	if name == "" {
		name = "Dockerfile"
	}
	res, err := parser.Parse(bytes.NewReader(df))
	if err != nil {
		return nil, dockerfileError(name, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, dockerfileError(name, err)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("the Dockerfile (%s) cannot be empty: %w", name, errdefs.ErrInvalidArgument)
	}
	return &parsed{stages: stages, metaArgs: metaArgs, escape: res.EscapeToken, name: name}, nil
}

// dockerfileError is a parse error with its line, as "Dockerfile:3: ...".
func dockerfileError(name string, err error) error {
	msg := err.Error()
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 && le.Locations[0][0].Start.Line > 0 {
		r := le.Locations[0][0]
		msg = fmt.Sprintf("%s:%d: %s", name, r.Start.Line, le.Unwrap().Error())
	} else {
		msg = fmt.Sprintf("%s: %s", name, msg)
	}
	return fmt.Errorf("dockerfile parse error: %s: %w", msg, errdefs.ErrInvalidArgument)
}

// syncWriter serialises writes of parallel stages.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// cleanupTmp removes the contexts and bundles of builds a crash
// interrupted (their mounts first).
func cleanupTmp(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), secretsDirPrefix) {
			_ = unix.Unmount(p, unix.MNT_DETACH)
		}
		unmountUnder(p)
		os.RemoveAll(p)
	}
}
