package server

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/berth-dev/berth/errdefs"
)

// handlerFunc is a handler that returns its error instead of writing it:
// errors before the response started become dockerd's JSON error body.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn handlerFunc) { mux.Handle(pattern, s.wrap(fn)) }

	// System.
	h("GET /_ping", s.ping)
	h("HEAD /_ping", s.ping)
	h("GET /version", s.version)
	h("GET /info", s.info)
	h("GET /events", s.events)
	h("GET /system/df", s.diskUsage)
	h("POST /auth", s.auth)

	// Images. Image names contain slashes ("127.0.0.1:5000/team/app"), so
	// the per-image routes take the rest of the path and split off the
	// action themselves.
	h("GET /images/json", s.imageList)
	h("POST /images/create", s.imageCreate)
	h("POST /images/load", s.imageLoad)
	h("GET /images/get", s.imageSaveMany)
	h("POST /images/prune", s.imagePrune)
	h("GET /images/{rest...}", s.imageGet)
	h("POST /images/{rest...}", s.imagePost)
	h("DELETE /images/{rest...}", s.imageDelete)
	h("POST /commit", s.commit)
	h("POST /build", s.build)
	h("POST /build/prune", s.buildPrune)

	// Containers.
	h("POST /containers/create", s.containerCreate)
	h("GET /containers/json", s.containerList)
	h("POST /containers/prune", s.containerPrune)
	h("GET /containers/{name}/json", s.containerInspect)
	h("POST /containers/{name}/start", s.containerStart)
	h("POST /containers/{name}/stop", s.containerStop)
	h("POST /containers/{name}/restart", s.containerRestart)
	h("POST /containers/{name}/kill", s.containerKill)
	h("POST /containers/{name}/wait", s.containerWait)
	h("DELETE /containers/{name}", s.containerRemove)
	h("GET /containers/{name}/logs", s.containerLogs)
	h("POST /containers/{name}/attach", s.containerAttach)
	h("GET /containers/{name}/attach/ws", s.containerAttachWS)
	h("POST /containers/{name}/resize", s.containerResize)
	h("GET /containers/{name}/top", s.containerTop)
	h("GET /containers/{name}/stats", s.containerStats)
	h("POST /containers/{name}/rename", s.containerRename)
	h("POST /containers/{name}/pause", s.containerPause)
	h("POST /containers/{name}/unpause", s.containerUnpause)
	h("POST /containers/{name}/update", s.containerUpdate)
	h("GET /containers/{name}/export", s.containerExport)
	h("GET /containers/{name}/changes", s.containerChanges)
	h("HEAD /containers/{name}/archive", s.containerArchiveHead)
	h("GET /containers/{name}/archive", s.containerArchiveGet)
	h("PUT /containers/{name}/archive", s.containerArchivePut)

	// Volumes.
	h("GET /volumes", s.withVolumes(s.volumeList))
	h("POST /volumes/create", s.withVolumes(s.volumeCreate))
	h("POST /volumes/prune", s.withVolumes(s.volumePrune))
	h("GET /volumes/{name}", s.withVolumes(s.volumeInspect))
	h("DELETE /volumes/{name}", s.withVolumes(s.volumeRemove))

	// Exec.
	h("POST /containers/{name}/exec", s.execCreate)
	h("POST /exec/{id}/start", s.execStart)
	h("POST /exec/{id}/resize", s.execResize)
	h("GET /exec/{id}/json", s.execInspect)

	// Networks.
	if s.b.Networks != nil {
		h("GET /networks", s.networkList)
		h("GET /networks/{id}", s.networkInspect)
		h("POST /networks/create", s.networkCreate)
		h("POST /networks/prune", s.networkPrune)
		h("DELETE /networks/{id}", s.networkRemove)
		h("POST /networks/{id}/connect", s.networkConnect)
		h("POST /networks/{id}/disconnect", s.networkDisconnect)
	}

	mux.Handle("/", s.wrap(func(w http.ResponseWriter, r *http.Request) error {
		return fmt.Errorf("page not found: %w", errdefs.ErrNotFound)
	}))
	return s.withVersion(mux)
}

// wrap adapts a handlerFunc: the query is parsed (never the body: bodies
// are tars and JSON documents read by the handlers), the experimental
// header is set, and a returned error is answered if nothing was sent yet,
// else logged.
func (s *Server) wrap(fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Experimental", strconv.FormatBool(s.cfg.Experimental))
		r.Form = r.URL.Query()
		tw := &trackingWriter{ResponseWriter: w}
		err := fn(tw, r)
		if err == nil {
			return
		}
		if status := StatusOf(err); status >= 500 {
			s.cfg.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		} else {
			s.cfg.Log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
		}
		if tw.started {
			return
		}
		writeError(tw, r, err)
	})
}

// trackingWriter remembers whether the response started, keeping the
// Flusher and Hijacker of the writer it wraps.
type trackingWriter struct {
	http.ResponseWriter
	started bool
}

func (t *trackingWriter) WriteHeader(code int) {
	t.started = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(p []byte) (int, error) {
	t.started = true
	return t.ResponseWriter.Write(p)
}

func (t *trackingWriter) Flush() {
	t.started = true
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (t *trackingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := t.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot hijack")
	}
	t.started = true
	return hj.Hijack()
}

func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }
