package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/api/server"
	"github.com/berth-dev/berth/build"
	"github.com/berth-dev/berth/daemon/events"
	"github.com/berth-dev/berth/image/service"
	"github.com/berth-dev/berth/network"
)

// Version is berthd's version, set at link time.
var Version = "dev"

// GitCommit is the commit berthd was built from, set at link time.
var GitCommit = ""

// shutdownTimeout bounds how long requests in flight may take to finish
// at shutdown before their connections are closed.
const shutdownTimeout = 10 * time.Second

// Engine is what the daemon hands to the container side when it builds
// it: the image service and the events bus.
type Engine struct {
	Config   Config
	Images   *service.Service
	Events   *events.Bus
	Networks *network.Manager
	Log      *slog.Logger
}

// Containers is the container side of the engine: the API backend and
// which containers use an image (rmi and prune keep those images).
type Containers interface {
	server.ContainerBackend
	ImageUsers(id digest.Digest) []string
}

// Options plug the parts of the engine that live outside this package.
type Options struct {
	// NewContainers builds the container backend once the image service
	// and the bus exist. nil serves every container and exec route with
	// server.NotImplemented (501).
	NewContainers func(Engine) (Containers, error)
	// ReloadConfig reads berthd's configuration again (its flags, then
	// the configuration file), for a SIGHUP: see reload. nil leaves
	// SIGHUP alone.
	ReloadConfig func() (Config, error)
	// Level is the logger's level, which a reload sets.
	Level *slog.LevelVar
}

// Daemon is a running berthd.
type Daemon struct {
	mu        sync.Mutex // guards cfg's reloadable options
	cfg       Config
	log       *slog.Logger
	images    *service.Service
	networks  *network.Manager
	bus       *events.Bus
	server    *server.Server
	builder   *build.Builder
	listeners []net.Listener
	locks     []*os.File
	id        string
	wrotePid  bool
}

// Run starts berthd with cfg and serves until ctx ends (SIGTERM, SIGINT),
// then stops serving and releases everything. Containers are not
// stopped: they belong to their shims.
func Run(ctx context.Context, cfg Config, opts Options, log *slog.Logger) error {
	d, err := start(cfg, opts, log)
	if err != nil {
		return err
	}
	errc := make(chan error, len(d.listeners))
	var wg sync.WaitGroup
	for _, l := range d.listeners {
		wg.Add(1)
		go func(l net.Listener) {
			defer wg.Done()
			if err := d.server.Serve(l); err != nil {
				errc <- fmt.Errorf("serve %s: %w", l.Addr(), err)
			}
		}(l)
	}
	log.Info("API listening", "hosts", strings.Join(d.cfg.Hosts, ","), "data-root", d.cfg.DataRoot, "exec-root", d.cfg.ExecRoot, "version", Version)
	hup := make(chan os.Signal, 1)
	if opts.ReloadConfig != nil {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	var serveErr error
wait:
	for {
		select {
		case <-hup:
			d.reload(opts)
		case <-ctx.Done():
			log.Info("shutting down")
			break wait
		case serveErr = <-errc:
			log.Error("API server failed", "err", serveErr)
			break wait
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	shutErr := d.server.Shutdown(sctx)
	wg.Wait()
	return errors.Join(serveErr, shutErr, d.close())
}

func start(cfg Config, opts Options, log *slog.Logger) (d *Daemon, err error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	d = &Daemon{cfg: cfg, log: log, bus: events.New()}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.close())
		}
	}()
	for _, dir := range []string{cfg.DataRoot, cfg.ExecRoot} {
		f, err := lockDir(dir)
		if err != nil {
			return d, err
		}
		d.locks = append(d.locks, f)
	}
	if d.id, err = engineID(cfg.DataRoot); err != nil {
		return d, err
	}
	if err := setupRemap(&cfg); err != nil {
		return d, err
	}
	d.cfg = cfg

	// Parse every host and take the unix sockets' locks before anything
	// is created, so a refused start leaves nothing behind.
	var hosts []host
	for _, h := range cfg.Hosts {
		ph, _ := parseHost(h)
		hosts = append(hosts, ph)
		if ph.proto == "unix" {
			if err := os.MkdirAll(filepath.Dir(ph.addr), 0o755); err != nil {
				return d, fmt.Errorf("socket directory for %s: %w", ph.addr, err)
			}
			f, err := lockFile(ph.addr+".lock", ph.addr)
			if err != nil {
				return d, err
			}
			d.locks = append(d.locks, f)
		}
	}

	var users atomic.Pointer[func(digest.Digest) []string]
	d.images, err = service.Open(filepath.Join(cfg.DataRoot, "images"), service.Options{
		ConfigPath: filepath.Join(cfg.DataRoot, "credentials", "config.json"),
		Insecure:   cfg.InsecureRegistries,
		Mirrors:    cfg.RegistryMirrors,
		InUse: func(id digest.Digest) []string {
			if f := users.Load(); f != nil {
				return (*f)(id)
			}
			return nil
		},
	})
	if err != nil {
		return d, fmt.Errorf("open image service under %s: %w", cfg.DataRoot, err)
	}
	if d.networks, err = openNetworks(cfg, log); err != nil {
		return d, err
	}
	var containers server.ContainerBackend = server.NotImplemented{}
	var volumes server.VolumeBackend
	if opts.NewContainers != nil {
		c, err := opts.NewContainers(Engine{Config: cfg, Images: d.images, Events: d.bus, Networks: d.networks, Log: log})
		if err != nil {
			return d, fmt.Errorf("start the container engine: %w", err)
		}
		f := c.ImageUsers
		users.Store(&f)
		containers = c
		if v, ok := c.(interface{ Volumes() server.VolumeBackend }); ok {
			volumes = v.Volumes()
		}
	}
	imgs := &imageBackend{svc: d.images, bus: d.bus, users: func(id digest.Digest) []string {
		if f := users.Load(); f != nil {
			return (*f)(id)
		}
		return nil
	}}
	var builds server.BuildBackend
	if opts.NewContainers != nil {
		if d.builder, err = newBuilder(cfg, d.images); err != nil {
			return d, fmt.Errorf("start the builder: %w", err)
		}
		builds = buildBackend{d.builder}
	}
	d.server = server.New(server.Config{
		Version: Version, GitCommit: GitCommit, Experimental: cfg.Experimental, Log: log,
	}, server.Backends{
		Images:     imgs,
		Containers: containers,
		System:     &systemBackend{d: d, images: imgs, containers: containers, volumes: volumes},
		Events:     d.bus,
		Volumes:    volumes,
		Networks:   newNetworkBackend(d.networks, d.bus, containers),
		Build:      builds,
	})

	for _, h := range hosts {
		var l net.Listener
		switch h.proto {
		case "unix":
			l, err = listenUnix(h.addr, log)
		case "tcp":
			l, err = listenTCP(h.addr, &d.cfg)
		}
		if err != nil {
			return d, err
		}
		d.listeners = append(d.listeners, l)
	}
	if err := writePidfile(cfg.Pidfile); err != nil {
		return d, err
	}
	d.wrotePid = true
	return d, nil
}

// close releases what start acquired, in reverse order.
func (d *Daemon) close() error {
	var errs []error
	for _, l := range d.listeners {
		// Serve closed them already after Shutdown; this covers a failed
		// start. The unix socket file goes with its listener.
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if d.networks != nil {
		errs = append(errs, d.networks.Close())
	}
	if d.builder != nil {
		errs = append(errs, d.builder.Close())
	}
	if d.images != nil {
		errs = append(errs, d.images.Close())
	}
	if d.wrotePid {
		errs = append(errs, os.Remove(d.cfg.Pidfile))
	}
	for i := len(d.locks) - 1; i >= 0; i-- {
		errs = append(errs, d.locks[i].Close())
	}
	return errors.Join(errs...)
}

// parseLevel reads --log-level.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal", "panic":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unable to parse logging level: %s", s)
}

// LogLevel is the slog level of cfg's --log-level / --debug.
func LogLevel(cfg Config) (slog.Level, error) {
	if cfg.Debug {
		return slog.LevelDebug, nil
	}
	return parseLevel(cfg.LogLevel)
}
