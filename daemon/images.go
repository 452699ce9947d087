package daemon

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/registry"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/api/filters"
	"github.com/berth-dev/berth/api/server"
	daemonevents "github.com/berth-dev/berth/daemon/events"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/archive"
	"github.com/berth-dev/berth/image/credentials"
	"github.com/berth-dev/berth/image/progress"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/service"
	"github.com/berth-dev/berth/image/store"
)

// imageBackend is server.ImageBackend on the image service: it
// translates to the API's shapes and publishes Docker's image events.
type imageBackend struct {
	svc   *service.Service
	bus   *daemonevents.Bus
	users func(digest.Digest) []string
}

var _ server.ImageBackend = (*imageBackend)(nil)

// event publishes an image event as dockerd: attributes are the image's
// labels plus "name".
func (b *imageBackend) event(ctx context.Context, action events.Action, id, name string) {
	attrs := map[string]string{}
	if resp, err := b.svc.Inspect(ctx, id); err == nil && resp.Config != nil {
		for k, v := range resp.Config.Labels {
			attrs[k] = v
		}
	}
	if name != "" {
		attrs["name"] = name
	}
	b.bus.Publish(events.ImageEventType, action, events.Actor{ID: id, Attributes: attrs})
}

func (b *imageBackend) summary(ctx context.Context, img store.Image) (image.Summary, error) {
	s := image.Summary{
		ID:          img.ID.String(),
		RepoTags:    img.RepoTags(),
		RepoDigests: img.RepoDigests(),
		Created:     img.Created.Unix(),
		Size:        img.Size,
		SharedSize:  -1,
		Labels:      map[string]string{},
		Containers:  int64(len(b.users(img.ID))),
		ParentID:    img.Parent.String(),
	}
	if img.Target.Digest != "" {
		t := img.Target
		s.Descriptor = &t
	}
	resp, err := b.svc.Inspect(ctx, img.ID.String())
	if err != nil {
		return s, err
	}
	if resp.Config != nil && resp.Config.Labels != nil {
		s.Labels = resp.Config.Labels
	}
	return s, nil
}

func (b *imageBackend) ImageList(ctx context.Context, opts server.ImageListOptions) ([]image.Summary, error) {
	f := opts.Filters
	lo := store.ListOptions{HideIntermediate: !opts.All}
	if d, err := f.Bool("dangling"); err != nil {
		return nil, err
	} else if d != nil {
		lo.Dangling = d
	}
	var imgs []store.Image
	if refs := f.Get("reference"); len(refs) > 0 {
		seen := map[digest.Digest]bool{}
		for _, ref := range refs {
			lo.Reference = ref
			found, err := b.svc.List(ctx, lo)
			if err != nil {
				return nil, err
			}
			for _, img := range found {
				if !seen[img.ID] {
					seen[img.ID] = true
					imgs = append(imgs, img)
				}
			}
		}
	} else {
		var err error
		if imgs, err = b.svc.List(ctx, lo); err != nil {
			return nil, err
		}
	}
	keep, err := b.timeFilters(ctx, f)
	if err != nil {
		return nil, err
	}
	var shared map[digest.Digest]int
	if opts.SharedSize {
		shared = layerUse(imgs)
	}
	out := []image.Summary{}
	for _, img := range imgs {
		if !keep(img) {
			continue
		}
		s, err := b.summary(ctx, img)
		if err != nil {
			return nil, err
		}
		if !f.MatchKVList("label", s.Labels) || (f.Has("label!") && negLabelMatch(f, s.Labels)) {
			continue
		}
		if opts.SharedSize {
			s.SharedSize = sharedSize(img, shared)
		}
		if refs := f.Get("reference"); len(refs) > 0 {
			// Like dockerd, only the names that matched are listed.
			s.RepoTags = matchingNames(s.RepoTags, refs)
			s.RepoDigests = matchingNames(s.RepoDigests, refs)
		}
		out = append(out, s)
	}
	return out, nil
}

// matchingNames keeps the familiar names ("repo:tag", "repo@digest")
// that a reference pattern matches, by repository or as a whole.
func matchingNames(names, patterns []string) []string {
	out := []string{}
	for _, n := range names {
		repo := n
		if i := strings.IndexByte(n, '@'); i >= 0 {
			repo = n[:i]
		} else if i := strings.LastIndexByte(n, ':'); i > strings.LastIndexByte(n, '/') {
			repo = n[:i]
		}
		for _, p := range patterns {
			if ok, _ := path.Match(p, repo); ok {
				out = append(out, n)
				break
			}
			if ok, _ := path.Match(p, n); ok {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// negLabelMatch reports whether labels match any "label!" filter (such
// images are left out).
func negLabelMatch(f filters.Args, labels map[string]string) bool {
	for _, v := range f.Get("label!") {
		if filters.Args(map[string]map[string]bool{"l": {v: true}}).MatchKVList("l", labels) {
			return true
		}
	}
	return false
}

// timeFilters builds the before/since/until test of an image list.
func (b *imageBackend) timeFilters(ctx context.Context, f filters.Args) (func(store.Image) bool, error) {
	var before, since, until time.Time
	for _, k := range []struct {
		key string
		t   *time.Time
	}{{"before", &before}, {"since", &since}} {
		for _, ref := range f.Get(k.key) {
			img, err := b.svc.Get(ctx, ref)
			if err != nil {
				return nil, err
			}
			*k.t = img.Created
		}
	}
	for _, v := range f.Get("until") {
		t, err := parseUntil(v, time.Now())
		if err != nil {
			return nil, err
		}
		until = t
	}
	return func(img store.Image) bool {
		if !before.IsZero() && !img.Created.Before(before) {
			return false
		}
		if !since.IsZero() && !img.Created.After(since) {
			return false
		}
		if !until.IsZero() && !img.Created.Before(until) {
			return false
		}
		return true
	}, nil
}

// parseUntil reads an "until" filter: a Go duration before now ("24h"),
// Unix seconds, or an RFC 3339 time.
func parseUntil(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	sec, frac, _ := strings.Cut(v, ".")
	if s, err := strconv.ParseInt(sec, 10, 64); err == nil {
		var ns int64
		if frac != "" {
			ns, _ = strconv.ParseInt((frac + "000000000")[:9], 10, 64)
		}
		return time.Unix(s, ns), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid until filter %q: %w", v, errdefs.ErrInvalidArgument)
}

// layerUse counts how many of imgs use each layer.
func layerUse(imgs []store.Image) map[digest.Digest]int {
	use := map[digest.Digest]int{}
	for _, img := range imgs {
		for _, chain := range store.ChainIDs(img.DiffIDs) {
			use[chain]++
		}
	}
	return use
}

// sharedSize is the size of img's layers that other images use too.
func sharedSize(img store.Image, use map[digest.Digest]int) int64 {
	var n int64
	for i, chain := range store.ChainIDs(img.DiffIDs) {
		if use[chain] > 1 && i < len(img.LayerSizes) {
			n += img.LayerSizes[i]
		}
	}
	return n
}

// uniqueLayerBytes is the size of all distinct layers of imgs.
func uniqueLayerBytes(imgs []store.Image) int64 {
	seen := map[digest.Digest]bool{}
	var n int64
	for _, img := range imgs {
		for i, chain := range store.ChainIDs(img.DiffIDs) {
			if !seen[chain] && i < len(img.LayerSizes) {
				seen[chain] = true
				n += img.LayerSizes[i]
			}
		}
	}
	return n
}

func (b *imageBackend) ImageInspect(ctx context.Context, name string) (image.InspectResponse, error) {
	resp, err := b.svc.Inspect(ctx, name)
	if err != nil {
		return resp, err
	}
	if img, err := b.svc.Get(ctx, name); err == nil && img.Target.Digest != "" {
		t := img.Target
		resp.Descriptor = &t
	}
	return resp, nil
}

func (b *imageBackend) ImageHistory(ctx context.Context, name string) ([]image.HistoryResponseItem, error) {
	return b.svc.History(ctx, name)
}

func (b *imageBackend) ImageTag(ctx context.Context, source, target string) error {
	img, err := b.svc.Get(ctx, source)
	if err != nil {
		return err
	}
	named, err := reference.Parse(target)
	if err != nil {
		return err
	}
	if named.Digest() != "" {
		return fmt.Errorf("refusing to create a tag with a digest reference: %w", errdefs.ErrInvalidArgument)
	}
	if err := b.svc.Tag(ctx, img.ID.String(), target); err != nil {
		return err
	}
	b.event(ctx, events.ActionTag, img.ID.String(), reference.FamiliarString(named))
	return nil
}

func (b *imageBackend) ImageRemove(ctx context.Context, name string, force, _ bool) ([]image.DeleteResponse, error) {
	// noprune keeps untagged parent images; images here have no local
	// parents (layers are snapshots, not images), so there is nothing
	// it could keep.
	img, err := b.svc.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	attrs := b.labels(ctx, img.ID.String())
	lines, err := b.svc.Remove(ctx, name, force)
	b.publishRemoval(img.ID.String(), attrs, lines)
	return lines, err
}

func (b *imageBackend) labels(ctx context.Context, id string) map[string]string {
	attrs := map[string]string{}
	if resp, err := b.svc.Inspect(ctx, id); err == nil && resp.Config != nil {
		for k, v := range resp.Config.Labels {
			attrs[k] = v
		}
	}
	return attrs
}

// publishRemoval sends dockerd's untag and delete events for rmi output.
func (b *imageBackend) publishRemoval(id string, labels map[string]string, lines []image.DeleteResponse) {
	for _, l := range lines {
		attrs := map[string]string{}
		for k, v := range labels {
			attrs[k] = v
		}
		attrs["name"] = id
		switch {
		case l.Untagged != "":
			b.bus.Publish(events.ImageEventType, events.ActionUnTag, events.Actor{ID: id, Attributes: attrs})
		case l.Deleted == id:
			b.bus.Publish(events.ImageEventType, events.ActionDelete, events.Actor{ID: id, Attributes: attrs})
		}
	}
}

func (b *imageBackend) ImagePrune(ctx context.Context, f filters.Args) (image.PruneReport, error) {
	dangling := true
	if d, err := f.Bool("dangling"); err != nil {
		return image.PruneReport{}, err
	} else if d != nil {
		dangling = *d
	}
	var rep image.PruneReport
	var err error
	if dangling && !f.Has("until") && !f.Has("label") && !f.Has("label!") {
		rep, err = b.svc.Prune(ctx)
	} else {
		rep, err = b.pruneFiltered(ctx, f, dangling)
	}
	if rep.ImagesDeleted == nil {
		rep.ImagesDeleted = []image.DeleteResponse{}
	}
	if err == nil {
		b.bus.Publish(events.ImageEventType, events.ActionPrune, events.Actor{Attributes: map[string]string{"reclaimed": strconv.FormatUint(rep.SpaceReclaimed, 10)}})
	}
	return rep, err
}

// pruneFiltered removes the images no container uses that pass the
// filters (only untagged ones when dangling). The space reclaimed is what
// the distinct layers of all images shrank by.
func (b *imageBackend) pruneFiltered(ctx context.Context, f filters.Args, dangling bool) (image.PruneReport, error) {
	rep := image.PruneReport{ImagesDeleted: []image.DeleteResponse{}}
	all, err := b.svc.List(ctx, store.ListOptions{})
	if err != nil {
		return rep, err
	}
	keep, err := b.timeFilters(ctx, filters.Args{"until": f["until"]})
	if err != nil {
		return rep, err
	}
	before := uniqueLayerBytes(all)
	for _, img := range all {
		if (dangling && !img.Dangling()) || len(b.users(img.ID)) > 0 || !keep(img) {
			continue
		}
		labels := b.labels(ctx, img.ID.String())
		if !f.MatchKVList("label", labels) || (f.Has("label!") && negLabelMatch(f, labels)) {
			continue
		}
		// Unused: force removes all of its names at once.
		lines, err := b.svc.Remove(ctx, img.ID.String(), true)
		b.publishRemoval(img.ID.String(), labels, lines)
		rep.ImagesDeleted = append(rep.ImagesDeleted, lines...)
		if err != nil && !errdefs.IsNotFound(err) {
			return rep, err
		}
	}
	after, err := b.svc.List(ctx, store.ListOptions{})
	if err != nil {
		return rep, err
	}
	if freed := before - uniqueLayerBytes(after); freed > 0 {
		rep.SpaceReclaimed = uint64(freed)
	}
	return rep, nil
}

func (b *imageBackend) ImagePull(ctx context.Context, ref, platform string, auth *registry.AuthConfig, out progress.Reporter) error {
	named, err := reference.Parse(ref)
	if err != nil {
		return err
	}
	// The client's credentials (X-Registry-Auth) win; without them the
	// daemon's own (POST /auth) serve.
	if ctx, err = withClientAuth(ctx, auth); err != nil {
		return err
	}
	img, err := b.svc.Pull(ctx, ref, service.PullOptions{Platform: platform, Progress: out})
	if err != nil {
		return err
	}
	_ = img
	b.event(ctx, events.ActionPull, reference.FamiliarString(named), reference.Familiar(named))
	return nil
}

func (b *imageBackend) ImagePush(ctx context.Context, ref string, auth *registry.AuthConfig, out progress.Reporter) error {
	named, err := reference.Parse(ref)
	if err != nil {
		return err
	}
	if ctx, err = withClientAuth(ctx, auth); err != nil {
		return err
	}
	if _, err := b.svc.Get(ctx, named.String()); err != nil {
		return fmt.Errorf("An image does not exist locally with the tag: %s: %w", reference.Familiar(named), errdefs.ErrNotFound)
	}
	if err := b.svc.Push(ctx, ref, service.PushOptions{Progress: out}); err != nil {
		return err
	}
	b.event(ctx, events.ActionPush, reference.FamiliarString(named), reference.Familiar(named))
	return nil
}

func (b *imageBackend) ImageImport(ctx context.Context, r io.Reader, ref string, changes []string) (string, error) {
	img, err := b.svc.Import(ctx, r, ref, changes)
	if err != nil {
		return "", err
	}
	id := img.ID.String()
	b.event(ctx, events.ActionImport, id, id)
	return id, nil
}

func (b *imageBackend) ImageLoad(ctx context.Context, r io.Reader) ([]string, error) {
	lines, err := b.svc.Load(ctx, r)
	if err != nil {
		return lines, err
	}
	for _, l := range lines {
		var id string
		if v, ok := strings.CutPrefix(l, "Loaded image ID: "); ok {
			id = v
		} else if v, ok := strings.CutPrefix(l, "Loaded image: "); ok {
			if img, err := b.svc.Get(ctx, v); err == nil {
				id = img.ID.String()
			}
		}
		if id != "" {
			b.event(ctx, events.ActionLoad, id, id)
		}
	}
	return lines, nil
}

func (b *imageBackend) ImageSave(ctx context.Context, w io.Writer, names []string) error {
	var ids []string
	for _, n := range names {
		img, err := b.svc.Get(ctx, n)
		if err != nil {
			return err
		}
		ids = append(ids, img.ID.String())
	}
	if err := b.svc.Save(ctx, w, names, archive.DockerArchive); err != nil {
		return err
	}
	for _, id := range ids {
		b.event(ctx, events.ActionSave, id, id)
	}
	return nil
}

// userPass is auth's user and password, from its "auth" field (base64
// "user:pass") when they are not given apart.
func userPass(auth registry.AuthConfig) (string, string, error) {
	user, pass := auth.Username, auth.Password
	if user == "" && pass == "" && auth.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(auth.Auth)
		if err != nil {
			return "", "", fmt.Errorf("invalid auth field: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		user, pass, _ = strings.Cut(string(raw), ":")
	}
	return user, pass, nil
}

// withClientAuth makes the credentials a client sent with a pull or push
// the ones used for it.
func withClientAuth(ctx context.Context, auth *registry.AuthConfig) (context.Context, error) {
	if auth == nil {
		return ctx, nil
	}
	user, pass, err := userPass(*auth)
	if err != nil {
		return ctx, err
	}
	return credentials.WithAuth(ctx, credentials.Auth{Username: user, Password: pass,
		IdentityToken: auth.IdentityToken, RegistryToken: auth.RegistryToken}), nil
}

func (b *imageBackend) Login(ctx context.Context, auth registry.AuthConfig) (registry.AuthResponse, error) {
	user, pass, err := userPass(auth)
	if err != nil {
		return registry.AuthResponse{}, err
	}
	host := strings.TrimSpace(auth.ServerAddress)
	if host == "https://index.docker.io/v1/" || host == "docker.io" {
		host = ""
	}
	if err := b.svc.Login(ctx, host, user, pass); err != nil {
		return registry.AuthResponse{}, err
	}
	return registry.AuthResponse{Status: "Login Succeeded"}, nil
}
