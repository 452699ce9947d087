package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/progress"
)

var imageListFilters = []string{"before", "dangling", "label", "label!", "reference", "since", "until"}

func (s *Server) imageList(w http.ResponseWriter, r *http.Request) error {
	f, err := filtersOf(r)
	if err != nil {
		return err
	}
	if err := f.Validate(imageListFilters...); err != nil {
		return err
	}
	if _, err := f.Bool("dangling"); err != nil {
		return err
	}
	items, err := s.b.Images.ImageList(r.Context(), ImageListOptions{
		All:        boolValue(r, "all"),
		SharedSize: boolValue(r, "shared-size"),
		Manifests:  boolValue(r, "manifests"),
		Filters:    f,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, imageSummaries(r.Context(), items))
	return nil
}

// imageGet serves GET /images/{name}/json|history|get.
func (s *Server) imageGet(w http.ResponseWriter, r *http.Request) error {
	name, action := splitImageAction(r.PathValue("rest"))
	ctx := r.Context()
	switch action {
	case "json":
		resp, err := s.b.Images.ImageInspect(ctx, name)
		if err != nil {
			return err
		}
		if versionBefore(ctx, "1.44") {
			writeJSON(w, http.StatusOK, struct {
				image.InspectResponse
				VirtualSize int64
			}{resp, resp.Size})
			return nil
		}
		writeJSON(w, http.StatusOK, resp)
		return nil
	case "history":
		items, err := s.b.Images.ImageHistory(ctx, name)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, items)
		return nil
	case "get":
		return s.imageSave(w, r, []string{name})
	}
	return fmt.Errorf("page not found: %w", errdefs.ErrNotFound)
}

// imagePost serves POST /images/{name}/tag|push.
func (s *Server) imagePost(w http.ResponseWriter, r *http.Request) error {
	name, action := splitImageAction(r.PathValue("rest"))
	switch action {
	case "tag":
		repo, tag := r.FormValue("repo"), r.FormValue("tag")
		if repo == "" {
			return invalid("repository name is required")
		}
		target := repo
		if tag != "" {
			if _, err := digest.Parse(tag); err == nil {
				return invalid("refusing to create a tag with a digest reference")
			}
			target += ":" + tag
		}
		if err := s.b.Images.ImageTag(r.Context(), name, target); err != nil {
			return err
		}
		w.WriteHeader(http.StatusCreated)
		return nil
	case "push":
		auth, err := registryAuth(r)
		if err != nil {
			return err
		}
		ref := name
		if tag := r.FormValue("tag"); tag != "" {
			ref += ":" + tag
		}
		return s.streamProgress(w, r, func(rep progress.Reporter) error {
			return s.b.Images.ImagePush(r.Context(), ref, auth, rep)
		})
	}
	return fmt.Errorf("page not found: %w", errdefs.ErrNotFound)
}

// splitImageAction splits "name/with/slashes/action".
func splitImageAction(rest string) (name, action string) {
	i := strings.LastIndexByte(rest, '/')
	if i < 0 {
		return "", rest
	}
	return rest[:i], rest[i+1:]
}

func (s *Server) imageDelete(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("rest")
	if strings.TrimSpace(name) == "" {
		return invalid("image name cannot be blank")
	}
	lines, err := s.b.Images.ImageRemove(r.Context(), name, boolValue(r, "force"), boolValue(r, "noprune"))
	if err != nil {
		return err
	}
	if lines == nil {
		lines = []image.DeleteResponse{}
	}
	writeJSON(w, http.StatusOK, lines)
	return nil
}

func (s *Server) imagePrune(w http.ResponseWriter, r *http.Request) error {
	f, err := filtersOf(r)
	if err != nil {
		return err
	}
	if err := f.Validate("dangling", "label", "label!", "until"); err != nil {
		return err
	}
	if _, err := f.Bool("dangling"); err != nil {
		return err
	}
	rep, err := s.b.Images.ImagePrune(r.Context(), f)
	if err != nil {
		return err
	}
	if rep.ImagesDeleted == nil {
		rep.ImagesDeleted = []image.DeleteResponse{}
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// imageCreate is POST /images/create: a pull (fromImage) or an import
// (fromSrc).
func (s *Server) imageCreate(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	if img := r.FormValue("fromImage"); img != "" {
		auth, err := registryAuth(r)
		if err != nil {
			return err
		}
		// "pull -a" sends a trailing ':'.
		ref := strings.TrimSuffix(img, ":")
		if tag := r.FormValue("tag"); tag != "" {
			if _, err := digest.Parse(tag); err == nil {
				ref = trimTag(ref) + "@" + tag
			} else {
				ref = trimTag(ref) + ":" + tag
			}
		}
		return s.streamProgress(w, r, func(rep progress.Reporter) error {
			return s.b.Images.ImagePull(ctx, ref, r.FormValue("platform"), auth, rep)
		})
	}
	src := r.FormValue("fromSrc")
	if src == "" {
		return invalid("fromImage or fromSrc is required")
	}
	if src != "-" {
		return fmt.Errorf("import from %q: only fromSrc=- (the request body) is supported: %w", src, errdefs.ErrNotImplemented)
	}
	ref := r.FormValue("repo")
	if ref != "" {
		if tag := r.FormValue("tag"); tag != "" {
			ref += ":" + tag
		}
	}
	id, err := s.b.Images.ImageImport(ctx, r.Body, ref, r.Form["changes"])
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	return json.NewEncoder(w).Encode(progress.MessageOf(progress.Event{Status: id}))
}

// trimTag drops a tag from a reference ("busybox:1" -> "busybox"), keeping
// a registry's port.
func trimTag(ref string) string {
	if strings.Contains(ref, "@") {
		return ref[:strings.IndexByte(ref, '@')]
	}
	return stripTag(ref)
}

// streamProgress runs op with a JSON progress stream as the response, as
// dockerd answers pulls and pushes. Like dockerd, whose first message only
// comes once the registry answered, the first message is held back: an
// operation that fails before reporting anything else (unknown image,
// refused credentials) is answered with an HTTP error status instead of a
// stream that carries the error.
func (s *Server) streamProgress(w http.ResponseWriter, r *http.Request, op func(progress.Reporter) error) error {
	d := &deferredReporter{start: func() progress.Reporter {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		return progress.NewJSON(newFlushWriter(w))
	}}
	err := op(d)
	if err != nil && !d.started() {
		return err
	}
	d.finish()
	return nil
}

// deferredReporter holds the first non-error event and starts the
// response at the second one (or at finish).
type deferredReporter struct {
	mu    sync.Mutex
	start func() progress.Reporter
	out   progress.Reporter
	held  []progress.Event
}

func (d *deferredReporter) Report(ev progress.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.out != nil {
		d.out.Report(ev)
		return
	}
	d.held = append(d.held, ev)
	nonErr := 0
	for _, h := range d.held {
		if h.Err == nil {
			nonErr++
		}
	}
	if nonErr >= 2 {
		d.flushLocked()
	}
}

func (d *deferredReporter) flushLocked() {
	d.out = d.start()
	for _, h := range d.held {
		d.out.Report(h)
	}
	d.held = nil
}

func (d *deferredReporter) started() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out != nil
}

func (d *deferredReporter) finish() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.out == nil {
		d.flushLocked()
	}
}

func (s *Server) imageLoad(w http.ResponseWriter, r *http.Request) error {
	lines, err := s.b.Images.ImageLoad(r.Context(), r.Body)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for _, l := range lines {
		if err := enc.Encode(struct {
			Stream string `json:"stream"`
		}{l + "\n"}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) imageSaveMany(w http.ResponseWriter, r *http.Request) error {
	return s.imageSave(w, r, r.Form["names"])
}

func (s *Server) imageSave(w http.ResponseWriter, r *http.Request, names []string) error {
	if len(names) == 0 {
		return invalid("no image names given")
	}
	lw := &lazyWriter{start: func() io.Writer {
		w.Header().Set("Content-Type", "application/x-tar")
		w.WriteHeader(http.StatusOK)
		return w
	}}
	return s.b.Images.ImageSave(r.Context(), lw, names)
}

// lazyWriter starts the response at the first byte, so that an error
// found before anything was written still gets an HTTP status.
type lazyWriter struct {
	start func() io.Writer
	w     io.Writer
}

func (l *lazyWriter) Write(p []byte) (int, error) {
	if l.w == nil {
		l.w = l.start()
	}
	return l.w.Write(p)
}

// commit is POST /commit, answered by the container backend.
func (s *Server) commit(w http.ResponseWriter, r *http.Request) error {
	var cfg container.Config
	empty, err := readJSON(w, r, &cfg, false)
	if err != nil {
		return err
	}
	opts := CommitOptions{
		Container: r.FormValue("container"),
		Comment:   r.FormValue("comment"),
		Author:    r.FormValue("author"),
		Pause:     boolValueOr(r, "pause", true),
		Changes:   r.Form["changes"],
	}
	if !empty {
		opts.Config = &cfg
	}
	if opts.Container == "" {
		return invalid("no container given")
	}
	if repo := r.FormValue("repo"); repo != "" {
		opts.Reference = repo
		if tag := r.FormValue("tag"); tag != "" {
			opts.Reference += ":" + tag
		}
	}
	id, err := s.b.Containers.ContainerCommit(r.Context(), opts)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, container.CommitResponse{ID: id})
	return nil
}
