package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/compression"
	"github.com/berth-dev/berth/image/content"
	"github.com/berth-dev/berth/image/gc"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/store"
)

// Limits on what Load keeps in memory.
const (
	// MaxMetadataFile caps one metadata file of an archive (manifest.json,
	// repositories, index.json, a config).
	MaxMetadataFile = 8 << 20
	// maxMetadataTotal caps all of them together.
	maxMetadataTotal = 64 << 20
	// maxSymlinkDepth bounds symlink chains inside an archive.
	maxSymlinkDepth = 16
)

// ErrMalformed is wrapped by the errors of archives Load refuses.
var ErrMalformed = fmt.Errorf("malformed image archive: %w", errdefs.ErrInvalidArgument)

// LoadOptions tune Load.
type LoadOptions struct {
	// Repository names the images of an OCI layout whose index.json gives
	// only a tag (org.opencontainers.image.ref.name "latest"): they are
	// loaded as Repository:tag. Without it they are loaded untagged.
	Repository string
}

// archiveFile is one file of the archive: kept in memory (metadata) or
// ingested as a blob.
type archiveFile struct {
	data []byte
	blob ocispec.Descriptor
}

// loader holds the state of one Load.
type loader struct {
	a     *Archiver
	lease *gc.Lease
	files map[string]*archiveFile
	links map[string]string // symlink name -> target (cleaned, archive-relative)
	meta  int64
}

// Load reads a docker-archive (what `docker save` and skopeo's
// docker-archive: write) or an OCI image layout tar from r, stores its
// blobs, unpacks its layers and records its images. It returns Docker's
// lines: "Loaded image: busybox:latest" per tag, "Loaded image ID:
// sha256:..." for an image without one.
//
// Archives are untrusted: names are cleaned and refused when they climb
// out ("../x") or are absolute, symlinks may only point inside the archive,
// metadata files are capped (MaxMetadataFile), every blob is checked
// against its digest and every layer against the config's diff id. A
// refused or failed load creates no image record and no committed snapshot
// beyond complete, verified layers; the blobs it wrote are only held by
// its lease and are reclaimed by the next collection.
func (a *Archiver) Load(ctx context.Context, r io.Reader, opts LoadOptions) ([]string, error) {
	l := &loader{a: a, lease: a.GC.NewLease(), files: map[string]*archiveFile{}, links: map[string]string{}}
	defer l.lease.Release()
	if err := l.read(ctx, r); err != nil {
		return nil, err
	}
	if _, ok := l.files["manifest.json"]; ok {
		return l.loadDockerArchive(ctx)
	}
	if _, ok := l.files["index.json"]; ok {
		return l.loadOCILayout(ctx, opts)
	}
	return nil, fmt.Errorf("%w: neither manifest.json (docker-archive) nor index.json (OCI layout) found", ErrMalformed)
}

// isMetadata says which files are read into memory.
func isMetadata(name string) bool {
	switch name {
	case "manifest.json", "repositories", "index.json", "oci-layout":
		return true
	}
	dir, base := path.Split(name)
	if dir == "" {
		return strings.HasSuffix(base, ".json")
	}
	return !strings.HasPrefix(name, "blobs/") && (base == "json" || base == "VERSION")
}

// cleanName makes an archive name relative and clean, refusing ones that
// climb out.
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: entry %q: absolute or invalid name", ErrMalformed, name)
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%w: entry %q: path climbs out of the archive", ErrMalformed, name)
	}
	return strings.TrimPrefix(c, "./"), nil
}

func (l *loader) read(ctx context.Context, r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: read tar: %v", ErrMalformed, err)
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeDir, tar.TypeXGlobalHeader:
			continue
		case tar.TypeSymlink:
			if path.IsAbs(hdr.Linkname) {
				return fmt.Errorf("%w: symlink %q points to an absolute path %q", ErrMalformed, hdr.Name, hdr.Linkname)
			}
			target, err := cleanName(path.Join(path.Dir(name), hdr.Linkname))
			if err != nil {
				return fmt.Errorf("symlink %q to %q: %w", hdr.Name, hdr.Linkname, err)
			}
			l.links[name] = target
			continue
		case tar.TypeReg:
		default:
			return fmt.Errorf("%w: entry %q has unsupported type %q", ErrMalformed, hdr.Name, hdr.Typeflag)
		}
		if isMetadata(name) {
			if hdr.Size > MaxMetadataFile {
				return fmt.Errorf("%w: %s is %d bytes, more than the %d allowed", ErrMalformed, name, hdr.Size, MaxMetadataFile)
			}
			l.meta += hdr.Size
			if l.meta > maxMetadataTotal {
				return fmt.Errorf("%w: metadata files total more than %d bytes", ErrMalformed, maxMetadataTotal)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return fmt.Errorf("%w: read %s: %v", ErrMalformed, name, err)
			}
			l.files[name] = &archiveFile{data: b}
			continue
		}
		desc, err := l.ingest(ctx, name, tr, hdr.Size)
		if err != nil {
			return err
		}
		l.files[name] = &archiveFile{blob: desc}
	}
	return nil
}

// ingest stores one file as a blob: under blobs/<alg>/<hex> (an OCI
// layout) its name is its expected digest; otherwise its digest is what
// was written.
func (l *loader) ingest(ctx context.Context, name string, r io.Reader, size int64) (ocispec.Descriptor, error) {
	desc := ocispec.Descriptor{Size: size}
	if rest, ok := strings.CutPrefix(name, "blobs/"); ok {
		alg, enc, _ := strings.Cut(rest, "/")
		d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
		if err := d.Validate(); err != nil {
			return desc, fmt.Errorf("%w: blob %q: not named by a digest: %v", ErrMalformed, name, err)
		}
		desc.Digest = d
		l.lease.AddBlob(d)
	}
	w, err := l.a.Content.Writer(ctx, "load-"+randomHex(8), desc)
	if errdefs.IsAlreadyExists(err) {
		return desc, nil
	}
	if err != nil {
		return desc, err
	}
	defer w.Close()
	if _, err := io.Copy(w, r); err != nil {
		return desc, fmt.Errorf("%w: read %s: %v", ErrMalformed, name, err)
	}
	if desc.Digest == "" {
		desc.Digest = w.Digest()
		l.lease.AddBlob(desc.Digest) // before the blob becomes visible
	}
	if err := w.Commit(ctx, size, desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		if errdefs.IsFailedPrecondition(err) {
			return desc, fmt.Errorf("%w: %s: %v", ErrMalformed, name, err)
		}
		return desc, err
	}
	return desc, nil
}

// resolve follows symlinks to a file of the archive.
func (l *loader) resolve(name string) (*archiveFile, error) {
	orig := name
	name, err := cleanName(name)
	if err != nil {
		return nil, err
	}
	for i := 0; i < maxSymlinkDepth; i++ {
		if f, ok := l.files[name]; ok {
			return f, nil
		}
		target, ok := l.links[name]
		if !ok {
			return nil, fmt.Errorf("%w: %q is missing from the archive", ErrMalformed, orig)
		}
		name = target
	}
	return nil, fmt.Errorf("%w: %q: too many levels of symlinks", ErrMalformed, orig)
}

// dockerManifestEntry is one image of a docker-archive's manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

func (l *loader) loadDockerArchive(ctx context.Context) ([]string, error) {
	var entries []dockerManifestEntry
	if err := json.Unmarshal(l.files["manifest.json"].data, &entries); err != nil {
		return nil, fmt.Errorf("%w: manifest.json: %v", ErrMalformed, err)
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: manifest.json lists no image", ErrMalformed)
	}
	type prepared struct {
		target ocispec.Descriptor
		names  []reference.Named
		tags   []string
		layers []ocispec.Descriptor
		diffs  []digest.Digest
	}
	var all []prepared
	// Check and store everything before changing any record or snapshot.
	for i, e := range entries {
		p := prepared{}
		for _, t := range e.RepoTags {
			n, err := reference.Parse(t)
			if err != nil {
				return nil, fmt.Errorf("%w: manifest.json image %d: RepoTags: %v", ErrMalformed, i, err)
			}
			p.names = append(p.names, n)
			p.tags = append(p.tags, reference.FamiliarString(n))
		}
		cf, err := l.resolve(e.Config)
		if err != nil {
			return nil, fmt.Errorf("manifest.json image %d: config: %w", i, err)
		}
		if cf.data == nil {
			return nil, fmt.Errorf("%w: config %q is not a JSON file", ErrMalformed, e.Config)
		}
		var cfg ocispec.Image
		if err := json.Unmarshal(cf.data, &cfg); err != nil {
			return nil, fmt.Errorf("%w: config %q: %v", ErrMalformed, e.Config, err)
		}
		if len(cfg.RootFS.DiffIDs) != len(e.Layers) {
			return nil, fmt.Errorf("%w: image %d lists %d layers, its config %d diff ids", ErrMalformed, i, len(e.Layers), len(cfg.RootFS.DiffIDs))
		}
		configDesc := content.Descriptor(ocispec.MediaTypeImageConfig, cf.data)
		if err := l.writeBlob(ctx, configDesc, cf.data); err != nil {
			return nil, err
		}
		m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: configDesc}
		for j, ln := range e.Layers {
			f, err := l.resolve(ln)
			if err != nil {
				return nil, fmt.Errorf("image %d layer %d: %w", i, j+1, err)
			}
			if f.blob.Digest == "" {
				return nil, fmt.Errorf("%w: layer %q is not a layer", ErrMalformed, ln)
			}
			desc, err := l.layerDescriptor(ctx, f.blob, cfg.RootFS.DiffIDs[j])
			if err != nil {
				return nil, fmt.Errorf("image %d layer %q: %w", i, ln, err)
			}
			m.Layers = append(m.Layers, desc)
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		p.target = content.Descriptor(ocispec.MediaTypeImageManifest, b)
		if err := l.writeBlob(ctx, p.target, b); err != nil {
			return nil, err
		}
		p.layers, p.diffs = m.Layers, cfg.RootFS.DiffIDs
		all = append(all, p)
	}
	var out []string
	for _, p := range all {
		sizes, err := l.a.unpack(ctx, l.lease, p.layers, p.diffs)
		if err != nil {
			return nil, err
		}
		img, err := l.a.Images.Put(ctx, p.target, store.PutOptions{Names: p.names, LayerSizes: sizes})
		if err != nil {
			return nil, err
		}
		out = append(out, loadedLines(img, p.tags)...)
	}
	return out, nil
}

func loadedLines(img store.Image, tags []string) []string {
	if len(tags) == 0 {
		return []string{"Loaded image ID: " + img.ID.String()}
	}
	var out []string
	for _, t := range tags {
		out = append(out, "Loaded image: "+t)
	}
	return out
}

// layerDescriptor checks a docker-archive layer blob against its diff id:
// an uncompressed tar must have the diff id as its digest; a compressed
// one must decompress to it.
func (l *loader) layerDescriptor(ctx context.Context, blob ocispec.Descriptor, diffID digest.Digest) (ocispec.Descriptor, error) {
	if blob.Digest == diffID {
		blob.MediaType = ocispec.MediaTypeImageLayer
		return blob, nil
	}
	ra, err := l.a.Content.ReaderAt(ctx, blob)
	if err != nil {
		return blob, err
	}
	defer ra.Close()
	dr, kind, err := compression.DecompressStream(content.NewReader(ra))
	if err != nil {
		return blob, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	defer dr.Close()
	if kind == compression.Uncompressed {
		return blob, fmt.Errorf("%w: layer digest %s does not match the config's diff id %s", ErrMalformed, blob.Digest, diffID)
	}
	dg := digest.SHA256.Digester()
	if _, err := io.Copy(dg.Hash(), dr); err != nil {
		return blob, fmt.Errorf("%w: decompress layer: %v", ErrMalformed, err)
	}
	if dg.Digest() != diffID {
		return blob, fmt.Errorf("%w: layer decompresses to %s, the config's diff id is %s", ErrMalformed, dg.Digest(), diffID)
	}
	blob.MediaType = ocispec.MediaTypeImageLayer + "+" + kind.String()
	return blob, nil
}

func (l *loader) writeBlob(ctx context.Context, desc ocispec.Descriptor, b []byte) error {
	l.lease.AddBlob(desc.Digest)
	return content.WriteBlob(ctx, l.a.Content, "load-"+desc.Digest.Encoded(), bytes.NewReader(b), desc)
}

// Annotations naming an image in an OCI layout's index.json.
const (
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = ocispec.AnnotationRefName
)

func (l *loader) loadOCILayout(ctx context.Context, opts LoadOptions) ([]string, error) {
	if f, ok := l.files["oci-layout"]; ok {
		var lay ocispec.ImageLayout
		if err := json.Unmarshal(f.data, &lay); err != nil || lay.Version == "" {
			return nil, fmt.Errorf("%w: oci-layout is not a layout version file", ErrMalformed)
		}
	} else {
		return nil, fmt.Errorf("%w: index.json without oci-layout", ErrMalformed)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(l.files["index.json"].data, &idx); err != nil {
		return nil, fmt.Errorf("%w: index.json: %v", ErrMalformed, err)
	}
	if len(idx.Manifests) == 0 {
		return nil, fmt.Errorf("%w: index.json lists no image", ErrMalformed)
	}
	type prepared struct {
		target ocispec.Descriptor
		names  []reference.Named
		tags   []string
		res    store.Resolved
	}
	var all []prepared
	for i, d := range idx.Manifests {
		if !store.IsIndex(d.MediaType) && !store.IsManifest(d.MediaType) {
			continue
		}
		p := prepared{target: ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}}
		name, err := ociName(d.Annotations, opts.Repository)
		if err != nil {
			return nil, fmt.Errorf("%w: index.json entry %d: %v", ErrMalformed, i, err)
		}
		if !name.IsZero() {
			p.names, p.tags = []reference.Named{name}, []string{reference.FamiliarString(name)}
		}
		res, err := store.Resolve(ctx, l.a.Content, p.target, l.a.platform())
		if err != nil {
			if errdefs.IsNotFound(err) {
				err = fmt.Errorf("%w: %v", ErrMalformed, err)
			}
			return nil, fmt.Errorf("index.json entry %d: %w", i, err)
		}
		for _, layer := range res.ManifestBody.Layers {
			if _, err := l.a.Content.Info(ctx, layer.Digest); err != nil {
				return nil, fmt.Errorf("%w: layer %s of %s is missing", ErrMalformed, layer.Digest, res.Manifest.Digest)
			}
		}
		p.res = res
		all = append(all, p)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: index.json lists no image manifest or index", ErrMalformed)
	}
	var out []string
	for _, p := range all {
		sizes, err := l.a.unpack(ctx, l.lease, p.res.ManifestBody.Layers, p.res.Config.RootFS.DiffIDs)
		if err != nil {
			return nil, err
		}
		plat := l.a.platform()
		img, err := l.a.Images.Put(ctx, p.target, store.PutOptions{Names: p.names, LayerSizes: sizes, Platform: &plat})
		if err != nil {
			return nil, err
		}
		out = append(out, loadedLines(img, p.tags)...)
	}
	return out, nil
}

// ociName names an index.json entry: io.containerd.image.name (a full
// reference) first; else org.opencontainers.image.ref.name, a reference
// when it has a repository, a tag of repo otherwise.
func ociName(ann map[string]string, repo string) (reference.Named, error) {
	if n := ann[annotationImageName]; n != "" {
		return reference.Parse(n)
	}
	ref := ann[annotationRefName]
	if ref == "" {
		return reference.Named{}, nil
	}
	if strings.ContainsAny(ref, "/:@") {
		return reference.Parse(ref)
	}
	if repo == "" {
		return reference.Named{}, nil
	}
	n, err := reference.Parse(repo)
	if err != nil {
		return n, err
	}
	return reference.WithTag(n, ref)
}
