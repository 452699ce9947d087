package archive

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/compression"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/store"
)

// Format is the layout Save writes.
type Format int

const (
	// DockerArchive is what `docker save` of Docker 20.10 writes:
	// manifest.json, repositories, <config hex>.json and per layer
	// <v1 id>/{VERSION,json,layer.tar} with the layer uncompressed.
	DockerArchive Format = iota
	// OCILayout is an OCI image layout as a tar: oci-layout, index.json
	// (one entry per image and tag, named by org.opencontainers.image.ref.name
	// and io.containerd.image.name) and blobs/<alg>/<hex> as stored.
	OCILayout
)

// saved is one image to write, with the names to give it.
type saved struct {
	img   store.Image
	names []reference.Named // tags only
}

// Save writes the images refs name (names, IDs or short IDs) to w in
// format. As with `docker save`, a repository without a tag ("busybox")
// takes every tag of that repository, a tagged name that tag, and an ID no
// tag. Several refs of one image are merged.
func (a *Archiver) Save(ctx context.Context, w io.Writer, refs []string, format Format) error {
	images, err := a.selectImages(ctx, refs)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	switch format {
	case DockerArchive:
		err = a.saveDocker(ctx, tw, images)
	case OCILayout:
		err = a.saveOCI(ctx, tw, images)
	default:
		err = fmt.Errorf("save: unknown format %d: %w", format, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return err
	}
	return tw.Close()
}

func (a *Archiver) selectImages(ctx context.Context, refs []string) ([]*saved, error) {
	if len(refs) == 0 {
		return nil, fmt.Errorf("save: no image given: %w", errdefs.ErrInvalidArgument)
	}
	var out []*saved
	byID := map[digest.Digest]*saved{}
	add := func(img store.Image, names ...reference.Named) {
		s, ok := byID[img.ID]
		if !ok {
			s = &saved{img: img}
			byID[img.ID] = s
			out = append(out, s)
		}
	outer:
		for _, n := range names {
			for _, have := range s.names {
				if have == n {
					continue outer
				}
			}
			s.names = append(s.names, n)
		}
	}
	for _, ref := range refs {
		img, err := a.Images.Get(ctx, ref)
		if err != nil && repoOnly(ref) {
			// "busybox" without busybox:latest: every tag of busybox.
			img, err = store.Image{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("save: %w", err)
		}
		n, perr := reference.Parse(ref)
		switch {
		case perr == nil && repoOnly(ref):
			all, err := a.Images.List(ctx, store.ListOptions{})
			if err != nil {
				return nil, err
			}
			found := false
			for _, i := range all {
				var tags []reference.Named
				for _, name := range i.Names {
					if name.Name() == n.Name() && name.Digest() == "" {
						tags = append(tags, name)
					}
				}
				if len(tags) > 0 {
					add(i, tags...)
					found = true
				}
			}
			if !found {
				return nil, fmt.Errorf("save: No such image: %s: %w", ref, errdefs.ErrNotFound)
			}
		case perr == nil && n.Digest() == "" && hasName(img, n):
			add(img, n)
		default:
			add(img)
		}
	}
	return out, nil
}

func hasName(img store.Image, n reference.Named) bool {
	for _, have := range img.Names {
		if have == n {
			return true
		}
	}
	return false
}

// repoOnly reports whether ref names a repository without tag or digest.
func repoOnly(ref string) bool {
	if strings.Contains(ref, "@") {
		return false
	}
	i := strings.LastIndexByte(ref, ':')
	return i < 0 || i < strings.LastIndexByte(ref, '/')
}

var epoch = time.Unix(0, 0).UTC()

func writeTarFile(tw *tar.Writer, name string, b []byte) error {
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}

func (a *Archiver) saveDocker(ctx context.Context, tw *tar.Writer, images []*saved) error {
	type manifestEntry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []manifestEntry
	repos := map[string]map[string]string{}
	written := map[string]bool{}
	for _, s := range images {
		cfgBytes, err := a.Images.ConfigBytes(ctx, s.img)
		if err != nil {
			return fmt.Errorf("save %s: %w", s.img.ID, err)
		}
		r, err := store.Resolve(ctx, a.Content, s.img.Manifest, a.platform())
		if err != nil {
			return fmt.Errorf("save %s: %w", s.img.ID, err)
		}
		entry := manifestEntry{Config: s.img.ID.Encoded() + ".json", Layers: []string{}}
		chains := store.ChainIDs(s.img.DiffIDs)
		parent := ""
		for i, layer := range r.ManifestBody.Layers {
			// Docker's v1 ids chain the layers; the top one carries the
			// image's config, so it is the image's own.
			v1 := digest.FromString(parent + " " + chains[i].String()).Encoded()
			if i == len(chains)-1 {
				v1 = digest.FromString(parent + " " + s.img.ID.String()).Encoded()
			}
			if !written[v1] {
				if err := a.writeV1Layer(ctx, tw, v1, parent, layer, s.img.DiffIDs[i], i == len(chains)-1, s.img); err != nil {
					return fmt.Errorf("save %s: layer %d: %w", s.img.ID, i+1, err)
				}
				written[v1] = true
			}
			entry.Layers = append(entry.Layers, v1+"/layer.tar")
			parent = v1
		}
		if !written[entry.Config] {
			if err := writeTarFile(tw, entry.Config, cfgBytes); err != nil {
				return err
			}
			written[entry.Config] = true
		}
		for _, n := range s.names {
			entry.RepoTags = append(entry.RepoTags, reference.FamiliarString(n))
			fam := reference.Familiar(n)
			if repos[fam] == nil {
				repos[fam] = map[string]string{}
			}
			repos[fam][n.Tag()] = parent
		}
		manifest = append(manifest, entry)
	}
	b, err := json.Marshal(manifest)
	if err != nil {
		return err
	}
	if err := writeTarFile(tw, "manifest.json", b); err != nil {
		return err
	}
	if len(repos) > 0 {
		b, err := json.Marshal(repos)
		if err != nil {
			return err
		}
		if err := writeTarFile(tw, "repositories", b); err != nil {
			return err
		}
	}
	return nil
}

// writeV1Layer writes <v1>/VERSION, <v1>/json and <v1>/layer.tar, the
// layer decompressed and checked against its diff id.
func (a *Archiver) writeV1Layer(ctx context.Context, tw *tar.Writer, v1, parent string, layer ocispec.Descriptor, diffID digest.Digest, top bool, img store.Image) error {
	if err := tw.WriteHeader(&tar.Header{Name: v1 + "/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if err := writeTarFile(tw, v1+"/VERSION", []byte("1.0")); err != nil {
		return err
	}
	v1json := map[string]any{"id": v1, "created": epoch.Format(time.RFC3339Nano), "os": img.Platform.OS,
		"container_config": map[string]any{"Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
			"AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false, "Env": nil, "Cmd": nil, "Image": "",
			"Volumes": nil, "WorkingDir": "", "Entrypoint": nil, "OnBuild": nil, "Labels": nil}}
	if parent != "" {
		v1json["parent"] = parent
	}
	if top && !img.Created.IsZero() {
		v1json["created"] = img.Created.Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(v1json)
	if err != nil {
		return err
	}
	if err := writeTarFile(tw, v1+"/json", b); err != nil {
		return err
	}
	// The tar header needs the size: count a first pass unless the blob
	// is the uncompressed tar itself.
	size := layer.Size
	if layer.Digest != diffID {
		n, d, err := a.decompressed(ctx, layer, io.Discard)
		if err != nil {
			return err
		}
		if d != diffID {
			return fmt.Errorf("layer %s decompresses to %s, not its diff id %s: %w", layer.Digest, d, diffID, errdefs.ErrFailedPrecondition)
		}
		size = n
	}
	if err := tw.WriteHeader(&tar.Header{Name: v1 + "/layer.tar", Mode: 0o644, Size: size, Typeflag: tar.TypeReg, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	n, d, err := a.decompressed(ctx, layer, tw)
	if err != nil {
		return err
	}
	if n != size || d != diffID {
		return fmt.Errorf("layer %s changed while saving (%d bytes, %s): %w", layer.Digest, n, d, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// decompressed copies the uncompressed layer to w and returns its size
// and digest.
func (a *Archiver) decompressed(ctx context.Context, layer ocispec.Descriptor, w io.Writer) (int64, digest.Digest, error) {
	ra, err := a.Content.ReaderAt(ctx, layer)
	if err != nil {
		return 0, "", err
	}
	defer ra.Close()
	dr, _, err := compression.DecompressStream(content.NewReader(ra))
	if err != nil {
		return 0, "", err
	}
	defer dr.Close()
	dg := digest.SHA256.Digester()
	n, err := io.Copy(io.MultiWriter(w, dg.Hash()), dr)
	if err != nil {
		return n, "", fmt.Errorf("layer %s: %w", layer.Digest, err)
	}
	return n, dg.Digest(), nil
}

func (a *Archiver) saveOCI(ctx context.Context, tw *tar.Writer, images []*saved) error {
	b, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	if err := writeTarFile(tw, ocispec.ImageLayoutFile, b); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: epoch}); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/", Mode: 0o755, Typeflag: tar.TypeDir, ModTime: epoch}); err != nil {
		return err
	}
	written := map[digest.Digest]bool{}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, s := range images {
		if err := a.writeTree(ctx, tw, s.img.Target, written, true); err != nil {
			return fmt.Errorf("save %s: %w", s.img.ID, err)
		}
		target := ocispec.Descriptor{MediaType: s.img.Target.MediaType, Digest: s.img.Target.Digest, Size: s.img.Target.Size}
		if len(s.names) == 0 {
			idx.Manifests = append(idx.Manifests, target)
		}
		for _, n := range s.names {
			d := target
			d.Annotations = map[string]string{annotationImageName: n.String(), annotationRefName: n.Tag()}
			idx.Manifests = append(idx.Manifests, d)
		}
	}
	b, err = json.Marshal(idx)
	if err != nil {
		return err
	}
	return writeTarFile(tw, "index.json", b)
}

// writeTree writes the blob d and what it references: an index's manifests
// that are present (all of them when required), a manifest's config and
// layers.
func (a *Archiver) writeTree(ctx context.Context, tw *tar.Writer, d ocispec.Descriptor, written map[digest.Digest]bool, required bool) error {
	if written[d.Digest] {
		return nil
	}
	if _, err := a.Content.Info(ctx, d.Digest); err != nil {
		if errdefs.IsNotFound(err) && !required {
			return nil
		}
		return err
	}
	var children []ocispec.Descriptor
	childRequired := true
	switch {
	case store.IsIndex(d.MediaType):
		var idx ocispec.Index
		if _, err := store.ReadJSON(ctx, a.Content, d, &idx); err != nil {
			return err
		}
		children, childRequired = idx.Manifests, false
	case store.IsManifest(d.MediaType):
		var m ocispec.Manifest
		if _, err := store.ReadJSON(ctx, a.Content, d, &m); err != nil {
			return err
		}
		children, childRequired = append([]ocispec.Descriptor{m.Config}, m.Layers...), required
	}
	for _, c := range children {
		if err := a.writeTree(ctx, tw, c, written, childRequired); err != nil {
			return err
		}
	}
	ra, err := a.Content.ReaderAt(ctx, d)
	if err != nil {
		return err
	}
	defer ra.Close()
	name := "blobs/" + d.Digest.Algorithm().String() + "/" + d.Digest.Encoded()
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: ra.Size(), Typeflag: tar.TypeReg, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, content.NewReader(ra)); err != nil {
		return err
	}
	written[d.Digest] = true
	return nil
}
