package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/system"

	"github.com/berth-dev/berth/api/filters"
)

func (s *Server) ping(w http.ResponseWriter, r *http.Request) error {
	h := w.Header()
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Swarm", "inactive")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return nil
	}
	_, err := w.Write([]byte("OK"))
	return err
}

func (s *Server) version(w http.ResponseWriter, r *http.Request) error {
	kernel := ""
	if s.b.System != nil {
		kernel = s.b.System.KernelVersion()
	}
	goVersion := runtime.Version()
	experimental := strconv.FormatBool(s.cfg.Experimental)
	v := system.VersionResponse{
		Platform: system.PlatformInfo{Name: "Berth Engine"},
		Components: []system.ComponentVersion{{
			Name:    "Engine",
			Version: s.cfg.Version,
			Details: map[string]string{
				"ApiVersion":    APIVersion,
				"MinAPIVersion": MinAPIVersion,
				"GitCommit":     s.cfg.GitCommit,
				"GoVersion":     goVersion,
				"Os":            runtime.GOOS,
				"Arch":          runtime.GOARCH,
				"KernelVersion": kernel,
				"Experimental":  experimental,
			},
		}},
		Version:       s.cfg.Version,
		APIVersion:    APIVersion,
		MinAPIVersion: MinAPIVersion,
		GitCommit:     s.cfg.GitCommit,
		GoVersion:     goVersion,
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
		KernelVersion: kernel,
		Experimental:  s.cfg.Experimental,
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) info(w http.ResponseWriter, r *http.Request) error {
	info, err := s.b.System.Info(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, info)
	return nil
}

// eventFilterKeys are the filters GET /events accepts.
var eventFilterKeys = []string{"config", "container", "daemon", "event", "image", "label", "network", "node", "plugin", "scope", "secret", "service", "type", "volume"}

func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	since, err := parseTimestamp(r.FormValue("since"))
	if err != nil {
		return err
	}
	until, err := parseTimestamp(r.FormValue("until"))
	if err != nil {
		return err
	}
	f, err := filtersOf(r)
	if err != nil {
		return err
	}
	if err := f.Validate(eventFilterKeys...); err != nil {
		return err
	}
	var timeout <-chan time.Time
	onlyPast := false
	if !until.IsZero() {
		if until.Before(since) {
			return invalid("`since` time (%s) cannot be after `until` time (%s)", r.FormValue("since"), r.FormValue("until"))
		}
		now := time.Now()
		onlyPast = until.Before(now)
		if !onlyPast {
			timer := time.NewTimer(until.Sub(now))
			defer timer.Stop()
			timeout = timer.C
		}
	}

	past, live, cancel := s.b.Events.Subscribe()
	defer cancel()

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	out := newFlushWriter(w)
	out.f.Flush()
	enc := json.NewEncoder(out)
	legacy := versionBefore(r.Context(), "1.52")
	send := func(m events.Message) error {
		if !includeEvent(f, m) {
			return nil
		}
		if legacy {
			return enc.Encode(legacyEvent(m))
		}
		return enc.Encode(m)
	}
	// Remembered events only when the client asked for a time window, as
	// dockerd.
	if !since.IsZero() || !until.IsZero() {
		for _, m := range past {
			if m.TimeNano < since.UnixNano() || (!until.IsZero() && m.TimeNano > until.UnixNano()) {
				continue
			}
			if err := send(m); err != nil {
				return nil
			}
		}
	}
	if onlyPast {
		return nil
	}
	for {
		select {
		case m, ok := <-live:
			if !ok {
				return nil
			}
			if !until.IsZero() && m.TimeNano > until.UnixNano() {
				return nil
			}
			if err := send(m); err != nil {
				return nil
			}
		case <-timeout:
			return nil
		case <-r.Context().Done():
			return nil
		}
	}
}

// legacyEventMessage is an event as API versions before 1.52 send it,
// with the status, id and from fields of API 1.21.
type legacyEventMessage struct {
	Status string `json:"status,omitempty"`
	ID     string `json:"id,omitempty"`
	From   string `json:"from,omitempty"`
	events.Message
}

func legacyEvent(m events.Message) legacyEventMessage {
	l := legacyEventMessage{Message: m}
	switch m.Type {
	case events.ContainerEventType:
		l.Status, l.ID, l.From = string(m.Action), m.Actor.ID, m.Actor.Attributes["image"]
	case events.ImageEventType:
		l.Status, l.ID = string(m.Action), m.Actor.ID
	}
	return l
}

// includeEvent is dockerd's event filter.
func includeEvent(f filters.Args, m events.Message) bool {
	// "exec_create", "exec_start" and "health_status" match the actions
	// carrying a command after a colon.
	action := string(m.Action)
	eventOK := f.ExactMatch("event", action)
	if !eventOK && (f["event"]["exec_create"] || f["event"]["exec_start"] || f["event"]["health_status"]) {
		eventOK = f.FuzzyMatch("event", action)
	}
	if !eventOK || !f.ExactMatch("type", string(m.Type)) {
		return false
	}
	if f.Has("scope") && !f.ExactMatch("scope", m.Scope) {
		return false
	}
	byName := func(key string, typ events.Type) bool {
		if !f.Has(key) {
			return true
		}
		return m.Type == typ && (f.FuzzyMatch(key, m.Actor.ID) || f.FuzzyMatch(key, m.Actor.Attributes["name"]))
	}
	if !byName("container", events.ContainerEventType) || !byName("network", events.NetworkEventType) ||
		!byName("volume", events.VolumeEventType) || !byName("plugin", events.PluginEventType) ||
		!byName("daemon", events.DaemonEventType) {
		return false
	}
	if f.Has("image") {
		nameAttr := "image"
		if m.Type == events.ImageEventType {
			nameAttr = "name"
		}
		name := m.Actor.Attributes[nameAttr]
		if !f.ExactMatch("image", m.Actor.ID) && !f.ExactMatch("image", name) &&
			!f.ExactMatch("image", stripTag(m.Actor.ID)) && !f.ExactMatch("image", stripTag(name)) {
			return false
		}
	}
	return f.MatchKVList("label", m.Actor.Attributes)
}

// stripTag drops ":tag" from a familiar name (not a registry's port).
func stripTag(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		switch name[i] {
		case ':':
			return name[:i]
		case '/', '@':
			return name
		}
	}
	return name
}

func (s *Server) diskUsage(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	opts := DiskUsageOptions{Verbose: boolValue(r, "verbose")}
	for _, t := range r.Form["type"] {
		switch o := system.DiskUsageObject(t); o {
		case system.ContainerObject, system.ImageObject, system.VolumeObject, system.BuildCacheObject:
			opts.Types = append(opts.Types, o)
		default:
			return invalid("unknown object type: %s", t)
		}
	}
	legacy := versionBefore(ctx, "1.52")
	if legacy || versionOf(ctx) == "1.52" && !opts.Verbose {
		// The legacy fields list every object.
		opts.Verbose = true
	}
	du, err := s.b.System.DiskUsage(ctx, opts)
	if err != nil {
		return err
	}
	if !legacy && versionOf(ctx) != "1.52" {
		writeJSON(w, http.StatusOK, du)
		return nil
	}
	old := legacyDiskUsage{Images: []any{}, Containers: []container.Summary{}, Volumes: []any{}, BuildCache: []any{}}
	if du.ImageUsage != nil {
		old.LayersSize = du.ImageUsage.TotalSize
		old.Images = imageSummaries(ctx, du.ImageUsage.Items)
	}
	if du.ContainerUsage != nil && du.ContainerUsage.Items != nil {
		old.Containers = du.ContainerUsage.Items
	}
	if du.VolumeUsage != nil {
		for _, v := range du.VolumeUsage.Items {
			old.Volumes = append(old.Volumes, v)
		}
	}
	if legacy {
		writeJSON(w, http.StatusOK, old)
		return nil
	}
	// 1.52 sends both shapes.
	writeJSON(w, http.StatusOK, struct {
		legacyDiskUsage
		system.DiskUsage
	}{old, du})
	return nil
}

// legacyDiskUsage is GET /system/df before API 1.52.
type legacyDiskUsage struct {
	LayersSize int64
	Images     []any
	Containers []container.Summary
	Volumes    []any
	BuildCache []any
}

// imageSummaries adapts image list items to the request's API version:
// VirtualSize before 1.44, "<none>" placeholders before 1.43.
func imageSummaries(ctx context.Context, items []image.Summary) []any {
	v, _ := ctx.Value(versionKey{}).(string)
	if v == "" {
		v = APIVersion
	}
	out := make([]any, 0, len(items))
	for _, it := range items {
		if it.RepoTags == nil {
			it.RepoTags = []string{}
		}
		if it.RepoDigests == nil {
			it.RepoDigests = []string{}
		}
		if it.Labels == nil {
			it.Labels = map[string]string{}
		}
		if compareVersions(v, "1.43") < 0 && len(it.RepoTags) == 0 {
			it.RepoTags = []string{"<none>:<none>"}
			if len(it.RepoDigests) == 0 {
				it.RepoDigests = []string{"<none>@<none>"}
			}
		}
		if compareVersions(v, "1.44") < 0 {
			out = append(out, struct {
				image.Summary
				VirtualSize int64
			}{it, it.Size})
			continue
		}
		out = append(out, it)
	}
	return out
}

func (s *Server) auth(w http.ResponseWriter, r *http.Request) error {
	var cfg registry.AuthConfig
	if _, err := readJSON(w, r, &cfg, false); err != nil {
		return err
	}
	resp, err := s.b.Images.Login(r.Context(), cfg)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// registryAuth decodes the X-Registry-Auth header (base64url JSON, padded
// or not); nil when absent. A malformed header is ignored as dockerd does
// (anonymous access), except that garbage that decodes to JSON of the
// wrong shape is an invalid argument.
func registryAuth(r *http.Request) (*registry.AuthConfig, error) {
	h := r.Header.Get(registry.AuthHeader)
	if h == "" {
		return nil, nil
	}
	raw, err := base64.URLEncoding.DecodeString(h)
	if err != nil {
		if raw, err = base64.RawURLEncoding.DecodeString(h); err != nil {
			return nil, nil
		}
	}
	var cfg registry.AuthConfig
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, invalid("invalid X-Registry-Auth header: %v", err)
	}
	return &cfg, nil
}
