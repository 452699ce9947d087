package pull_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/content/local"
	"github.com/berth-dev/berth/image/pull"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/registry"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/snapshot"
)

// Placeholders in the fuzzed manifests, replaced before they are served so
// that the fuzzer can reach the code after the digest checks: the config's
// and the child manifest's digests and sizes.
// fuzzRegistry is an in-memory registry for one repository: /v2/ answers
// 200, the tag "latest" is top, any manifest digest is child, the config's
// digest is config; every other blob is unknown.
type fuzzRegistry struct {
	top, child, config []byte
	contentType        string
}

func (f *fuzzRegistry) RoundTrip(req *http.Request) (*http.Response, error) {
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Request: req, Body: http.NoBody}
	p := req.URL.Path
	body := func(b []byte, ct string) {
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		if ct != "" {
			resp.Header.Set("Content-Type", ct)
		}
	}
	switch {
	case p == "/v2/":
	case strings.HasSuffix(p, "/manifests/latest"):
		body(f.top, f.contentType)
	case strings.Contains(p, "/manifests/"):
		body(f.child, "")
	case strings.HasSuffix(p, "/blobs/"+digest.FromBytes(f.config).String()):
		body(f.config, "application/octet-stream")
	default:
		resp.StatusCode = http.StatusNotFound
		body([]byte(`{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}`), "application/json")
	}
	resp.Status = strconv.Itoa(resp.StatusCode) + " " + http.StatusText(resp.StatusCode)
	return resp, nil
}

// noSnapshots has nothing and makes nothing: the fuzzed pulls stop at the
// first layer, after all of the decoding and validation.
type noSnapshots struct{}

var errNoSnapshots = errors.New("fuzz: no snapshots")

func (noSnapshots) Stat(context.Context, string) (snapshot.Info, error) {
	return snapshot.Info{}, errdefs.ErrNotFound
}
func (noSnapshots) Update(context.Context, snapshot.Info, ...string) (snapshot.Info, error) {
	return snapshot.Info{}, errNoSnapshots
}
func (noSnapshots) Usage(context.Context, string) (snapshot.Usage, error) {
	return snapshot.Usage{}, errNoSnapshots
}
func (noSnapshots) Mounts(context.Context, string) ([]snapshot.Mount, error) {
	return nil, errNoSnapshots
}
func (noSnapshots) Prepare(context.Context, string, string, ...snapshot.Opt) ([]snapshot.Mount, error) {
	return nil, errNoSnapshots
}
func (noSnapshots) View(context.Context, string, string, ...snapshot.Opt) ([]snapshot.Mount, error) {
	return nil, errNoSnapshots
}
func (noSnapshots) Commit(context.Context, string, string, ...snapshot.Opt) error {
	return errNoSnapshots
}
func (noSnapshots) Remove(context.Context, string) error          { return errdefs.ErrNotFound }
func (noSnapshots) Walk(context.Context, snapshot.WalkFunc) error { return nil }
func (noSnapshots) Close() error                                  { return nil }

// FuzzPullManifest feeds untrusted manifest, index (or Docker manifest
// list) and config bytes through Pull, from the registry client's
// manifest fetch (size cap, digest check, media type sniffing) to the
// puller's decoding and validation (media types, schema 1, platform
// selection, config decoding, diff_ids against layers, layer media types
// and digests). It must never panic; a pull that succeeds must be
// consistent.
func FuzzPullManifest(f *testing.F) {
	bb := images.Busybox(f)
	idx := images.BusyboxIndex(f)
	read := func(img *images.Image, d digest.Digest) []byte {
		b, err := os.ReadFile(img.BlobPath(d))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	// Single manifest: OCI and Docker schema 2.
	cfg := read(bb, bb.Manifest.Config.Digest)
	man := images.SeedFrom(read(bb, bb.Top.Digest), bb.Manifest.Config, ocispec.Descriptor{})
	f.Add(man, []byte(nil), cfg, ocispec.MediaTypeImageManifest)
	f.Add(images.Dockerize(man), []byte(nil), cfg, registry.MediaTypeDockerManifest)
	f.Add(man, []byte(nil), cfg, "") // media type from the body only
	// Index and Docker manifest list: the child is the host's manifest.
	var ix ocispec.Index
	ib := read(idx, idx.Top.Digest)
	if err := json.Unmarshal(ib, &ix); err != nil {
		f.Fatal(err)
	}
	for _, md := range ix.Manifests {
		mb := read(idx, md.Digest)
		var m ocispec.Manifest
		if err := json.Unmarshal(mb, &m); err != nil {
			f.Fatal(err)
		}
		child := images.SeedFrom(mb, m.Config, ocispec.Descriptor{})
		top := images.SeedFrom(ib, ocispec.Descriptor{}, md)
		cb := read(idx, m.Config.Digest)
		f.Add(top, child, cb, ocispec.MediaTypeImageIndex)
		f.Add(images.Dockerize(top), images.Dockerize(child), cb, registry.MediaTypeDockerManifestList)
	}
	// Shapes the checks must refuse.
	f.Add([]byte(`{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}`), []byte(nil), []byte(nil), "")
	f.Add([]byte(`{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"`+images.SeedConfig+`","size":`+images.SeedConfigSize+`},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"sha256:`+strings.Repeat("ab", 32)+`","size":5,"urls":["http://127.0.0.1:1/x"]}]}`),
		[]byte(nil), []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:`+strings.Repeat("cd", 32)+`"]}}`), "")
	f.Add([]byte(`{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"`+images.SeedChild+`","size":`+images.SeedChildSize+`,"platform":{"os":"linux","architecture":"arm","variant":"v9"}}]}`),
		[]byte(`{}`), []byte(`{}`), "")

	cs, err := local.NewStore(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	ref := reference.MustParse("fuzz.invalid/fuzz/image:latest")
	f.Fuzz(func(t *testing.T, top, child, config []byte, contentType string) {
		if len(top) > 1<<16 || len(child) > 1<<16 || len(config) > 1<<16 {
			return
		}
		child = images.FillSeed(child, config, nil)
		top = images.FillSeed(top, config, child)
		fr := &fuzzRegistry{top: top, child: child, config: config, contentType: contentType}
		client := registry.New(registry.Options{Transport: fr, Retries: -1, Keychain: anonymous{}})
		for _, platform := range []string{"", "linux/arm64/v8"} {
			res, err := pull.Pull(context.Background(), ref, pull.Options{
				Registry: client, Content: cs, Snapshots: noSnapshots{}, Platform: platform, Concurrency: 2,
			})
			if err != nil {
				if os.Getenv("FUZZ_DEBUG") != "" {
					t.Logf("%s: %v", platform, err)
				}
				continue
			}
			// Only an image without layers gets through noSnapshots.
			if len(res.Layers) != 0 || len(res.DiffIDs) != 0 || res.ChainID != "" {
				t.Fatalf("pull succeeded with layers: %+v", res)
			}
			if res.Config.Digest != digest.FromBytes(config) {
				t.Fatalf("config %s, served %s", res.Config.Digest, digest.FromBytes(config))
			}
		}
	})
}

// anonymous is a keychain without credentials (never the host's).
type anonymous struct{}

func (anonymous) Resolve(authn.Resource) (authn.Authenticator, error) { return authn.Anonymous, nil }
