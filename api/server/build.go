package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/moby/moby/api/types/build"

	"github.com/berth-dev/berth/errdefs"
)

// BuildBackend runs Dockerfile builds (POST /build, Docker's classic
// builder protocol).
type BuildBackend interface {
	// Build reads the context tar from body, writes the build's text
	// output to out and returns the image ID. ExitCode reports the exit
	// code a failed RUN carried (0 for other errors).
	Build(ctx context.Context, opts BuildOptions, body io.Reader, out io.Writer) (string, error)
	ExitCode(err error) int
	// PruneCache forgets cached build steps: all of them, or only those
	// whose image is gone; it returns the steps forgotten.
	PruneCache(ctx context.Context, all bool) ([]string, error)
}

// BuildOptions are POST /build's parameters.
type BuildOptions struct {
	Tags        []string
	Dockerfile  string
	BuildArgs   map[string]*string
	Labels      map[string]string
	Target      string
	NoCache     bool
	Pull        bool
	Quiet       bool
	CacheFrom   []string
	NetworkMode string
	// Secrets: the body starts with a tar of secrets before the context
	// (berth build --secret; query berthsecrets=1).
	Secrets bool
	// Platform is the target platform (docker build --platform).
	Platform string
}

// build is POST /build: the query as dockerd's, the answer a JSON message
// stream ({"stream": ...}, {"aux": {"ID": ...}}, {"errorDetail": ...}).
func (s *Server) build(w http.ResponseWriter, r *http.Request) error {
	if s.b.Build == nil {
		return fmt.Errorf("build: not available in this berthd: %w", errdefs.ErrNotImplemented)
	}
	if v := r.FormValue("version"); v == "2" {
		return fmt.Errorf("BuildKit (builder version 2) is not supported by berthd; use the classic builder (DOCKER_BUILDKIT=0): %w", errdefs.ErrNotImplemented)
	}
	if v := r.FormValue("remote"); v != "" {
		return fmt.Errorf("remote build contexts (remote=%s) are not supported: send the context as the request body: %w", v, errdefs.ErrNotImplemented)
	}
	// Options the builder does not honour fail rather than being
	// ignored (the docker CLI sends the zero values of all of them).
	for _, p := range []string{"extrahosts", "squash", "isolation", "outputs", "cpusetcpus", "cpusetmems", "cgroupparent",
		"memory", "memswap", "cpushares", "cpuquota", "cpuperiod", "shmsize", "ulimits"} {
		if v := r.FormValue(p); v != "" && v != "0" && v != "false" && v != "[]" && v != "null" {
			return fmt.Errorf("build parameter %s=%s is not supported: %w", p, v, errdefs.ErrNotImplemented)
		}
	}
	o := BuildOptions{
		Tags:        r.Form["t"],
		Dockerfile:  r.FormValue("dockerfile"),
		Target:      r.FormValue("target"),
		NoCache:     boolValue(r, "nocache"),
		Pull:        boolValue(r, "pull"),
		Quiet:       boolValue(r, "q"),
		NetworkMode: r.FormValue("networkmode"),
		Secrets:     boolValue(r, "berthsecrets"),
		Platform:    r.FormValue("platform"),
	}
	for _, j := range []struct {
		name string
		v    any
	}{{"buildargs", &o.BuildArgs}, {"labels", &o.Labels}, {"cachefrom", &o.CacheFrom}} {
		if v := r.FormValue(j.name); v != "" {
			if err := json.Unmarshal([]byte(v), j.v); err != nil {
				return invalid("invalid %s: %v", j.name, err)
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(newFlushWriter(w))
	enc.SetEscapeHTML(false)
	out := io.Writer(&streamWriter{enc: enc})
	if o.Quiet {
		out = io.Discard
	}
	id, err := s.b.Build.Build(r.Context(), o, r.Body, out)
	if err != nil {
		msg := MessageOf(err)
		// dockerd's classic builder ends the stream with the error; a
		// failed RUN's code becomes the client's exit status.
		return silent(enc.Encode(map[string]any{
			"errorDetail": map[string]any{"message": msg, "code": s.b.Build.ExitCode(err)},
			"error":       msg,
		}))
	}
	if err := enc.Encode(map[string]any{"aux": map[string]string{"ID": id}}); err != nil {
		return silent(err)
	}
	if o.Quiet {
		return silent(enc.Encode(map[string]string{"stream": id + "\n"}))
	}
	return nil
}

// silent drops an error that arrives after the response started (the
// client went away): there is nobody left to tell.
func silent(error) error { return nil }

// streamWriter turns the builder's text into {"stream": ...} messages.
type streamWriter struct {
	enc *json.Encoder
}

func (s *streamWriter) Write(p []byte) (int, error) {
	if err := s.enc.Encode(map[string]string{"stream": strings.ToValidUTF8(string(p), "\uFFFD")}); err != nil {
		return 0, err
	}
	return len(p), nil
}

// buildPrune is POST /build/prune (`docker builder prune`, and the last
// step of `docker system prune`). The cache's steps name images, whose
// space image prune reclaims, so none is reclaimed here. Filters and
// storage limits cannot select steps (they record no time, size or
// label): with any of them, as without all, only the steps whose image is
// gone are pruned.
func (s *Server) buildPrune(w http.ResponseWriter, r *http.Request) error {
	if s.b.Build == nil {
		return fmt.Errorf("build: not available in this berthd: %w", errdefs.ErrNotImplemented)
	}
	f, err := filtersOf(r)
	if err != nil {
		return err
	}
	limited := len(f) > 0
	for _, p := range []string{"keep-storage", "reserved-space", "max-used-space", "min-free-space"} {
		if v := r.FormValue(p); v != "" && v != "0" {
			limited = true
		}
	}
	deleted, err := s.b.Build.PruneCache(r.Context(), boolValue(r, "all") && !limited)
	if err != nil {
		return err
	}
	if deleted == nil {
		deleted = []string{}
	}
	writeJSON(w, http.StatusOK, build.CachePruneReport{CachesDeleted: deleted})
	return nil
}
