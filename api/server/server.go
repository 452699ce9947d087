// Package server is berthd's Docker Engine API server: routing, API
// version negotiation, Docker's headers and error bodies, and handlers
// that only translate HTTP to calls of the engine's backends (images,
// containers and exec, system information, events) and back.
//
// A handler never touches the disk or the kernel itself.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// The API versions served. Requests to /v<MinAPIVersion>/… up to
// /v<APIVersion>/… are accepted; unversioned paths are served as
// APIVersion. APIVersion is the version of github.com/moby/moby/api in
// go.mod, whose types the handlers return; the shapes that differ in older
// versions (legacy event fields, the pre-1.52 system/df, VirtualSize and
// "<none>" tags of image lists) are produced per version.
const (
	MinAPIVersion = "1.41"
	APIVersion    = "1.56"
)

// Timeouts and limits that keep a slow or hostile client from holding
// resources. There is no read or write timeout for whole requests: pulls,
// logs, events and attach stream for as long as they last.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 1 << 20
	// maxJSONBody bounds the JSON documents the API accepts in bodies.
	maxJSONBody = 16 << 20
)

// Config describes the engine the server fronts.
type Config struct {
	// Version is the engine's version ("Server" header, /version).
	Version string
	// GitCommit is the commit the engine was built from.
	GitCommit string
	// Experimental is reported by /_ping and /version.
	Experimental bool
	// Log receives request errors; nil discards them.
	Log *slog.Logger
}

// Backends are the engine services the handlers call.
type Backends struct {
	Images     ImageBackend
	Containers ContainerBackend
	System     SystemBackend
	Events     EventsBackend
	// Volumes may be nil: the volume routes then answer 501.
	Volumes VolumeBackend
	// Networks may be nil: the /networks routes are then not served.
	Networks NetworkBackend
	// Build runs POST /build; nil answers 501.
	Build BuildBackend
}

// Server serves the Engine API on any number of listeners.
type Server struct {
	cfg     Config
	b       Backends
	handler http.Handler

	mu      sync.Mutex
	servers []*http.Server
	// base is every request's parent context; canceling it at Shutdown
	// ends the streams (events, logs -f, pulls) that would never go idle.
	base   context.Context
	cancel context.CancelFunc
}

// New returns a server for b. Containers may be NotImplemented{} until a
// container engine is plugged in.
func New(cfg Config, b Backends) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, b: b}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.handler = s.routes()
	return s
}

// Handler is the whole API as one http.Handler (for tests with
// httptest).
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves the API on l until Shutdown. It returns nil after
// Shutdown.
func (s *Server) Serve(l net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return s.base },
		ErrorLog:          slog.NewLogLogger(s.cfg.Log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	if s.base.Err() != nil {
		s.mu.Unlock()
		return nil
	}
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting connections, ends streaming requests and waits
// for the others until ctx is done, then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.cancel()
	servers := s.servers
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, srv.Close())
		}
	}
	return errors.Join(errs...)
}
