package service

import (
	"context"
	"fmt"
	"slices"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/image/progress"
	"github.com/berth-dev/berth/image/push"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/store"
)

// PushOptions tune Push.
type PushOptions struct {
	// Progress receives Docker's push messages and per-layer events
	// (dropped when nil).
	Progress progress.Reporter
}

// Push is `docker push`: it uploads the local image named ref to ref's
// repository and tag. Blobs the registry holds in another repository of the
// same registry that this store has names for are mounted instead of
// uploaded ("Mounted from"). Afterwards the image also gets the digest
// reference it has in that repository, as Docker records it.
func (s *Service) Push(ctx context.Context, ref string, opts PushOptions) error {
	named, err := reference.Parse(ref)
	if err != nil {
		return err
	}
	rep := opts.Progress
	if rep == nil {
		rep = progress.Discard
	}
	img, err := s.images.Get(ctx, named.String())
	if err != nil {
		return err
	}
	target, err := s.pushTarget(ctx, img)
	if err != nil {
		return err
	}
	mountFrom, err := s.mountCandidates(ctx, named, img)
	if err != nil {
		return err
	}
	client := s.client.Load()
	err = push.Push(ctx, named, target, s.content, push.Options{
		Keychain:  s.creds.Keychain(),
		Insecure:  client.Insecure(named.Domain()),
		Progress:  rep,
		MountFrom: mountFrom,
	})
	if err != nil {
		rep.Report(progress.Event{Err: err})
		return err
	}
	if named.Tag() != "" {
		rep.Report(progress.Event{Status: fmt.Sprintf("%s: digest: %s size: %d", named.Tag(), target.Digest, target.Size)})
	}
	byDigest, err := reference.Parse(named.Name() + "@" + target.Digest.String())
	if err != nil {
		return err
	}
	return s.images.Tag(ctx, img.ID.String(), byDigest)
}

// pushTarget is what to push of img: its target, unless that is an index
// whose other platforms' manifests were never fetched (a pull fetches one
// platform), in which case the platform manifest, as Docker pushes it.
func (s *Service) pushTarget(ctx context.Context, img store.Image) (ocispec.Descriptor, error) {
	if !store.IsIndex(img.Target.MediaType) {
		return img.Target, nil
	}
	var idx ocispec.Index
	if _, err := store.ReadJSON(ctx, s.content, img.Target, &idx); err != nil {
		return ocispec.Descriptor{}, err
	}
	for _, m := range idx.Manifests {
		if _, err := s.content.Info(ctx, m.Digest); err != nil {
			return img.Manifest, nil
		}
	}
	return img.Target, nil
}

// mountCandidates lists the repositories of named's registry, other than
// named's own, that local images have names in: the image's own names
// first, then every other image's.
func (s *Service) mountCandidates(ctx context.Context, named reference.Named, img store.Image) ([]string, error) {
	var out []string
	add := func(names []reference.Named) {
		for _, n := range names {
			if n.Domain() == named.Domain() && n.Path() != named.Path() && !slices.Contains(out, n.Path()) {
				out = append(out, n.Path())
			}
		}
	}
	add(img.Names)
	all, err := s.images.List(ctx, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, other := range all {
		if other.ID != img.ID {
			add(other.Names)
		}
	}
	return out, nil
}
