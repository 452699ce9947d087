package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil/dockerd"
	"github.com/berth-dev/berth/internal/testutil/images"
	"github.com/berth-dev/berth/internal/testutil/registry"
	"github.com/berth-dev/berth/runtime/mountinfo"
)

// BerthPull pulls ref (from a plain-HTTP loopback registry) into an empty
// store rooted at root, unpacking every layer. The bench command sets it.
var BerthPull func(ctx context.Context, ref, root string) error

// PullSystems are the image pullers measured side by side: berth (in
// process), skopeo copy to an OCI layout plus umoci unpack, podman pull,
// and docker pull into a private dockerd.
func PullSystems() []System {
	systems := []System{{Name: "berth"}} // in process: no binary
	if BerthPull == nil {
		systems[0].Missing = "no pull implementation linked"
	}
	for _, a := range []struct{ name, bins string }{
		{"skopeo+umoci", "skopeo umoci"}, {"podman", "podman"}, {"docker", "dockerd docker"},
	} {
		s := System{Name: a.name, Binary: strings.Fields(a.bins)[0], Anchor: true}
		for _, b := range strings.Fields(a.bins) {
			if _, err := exec.LookPath(b); err != nil {
				s.Missing = fmt.Sprintf("binary %q not found", b)
			}
		}
		systems = append(systems, s)
	}
	return systems
}

// PullScenario serves the generated image from a loopback registry and
// measures a pull, unpack included: cold, into an empty store, or (Half)
// with the first half of its layers already present.
type PullScenario struct {
	Spec images.Spec
	// Half: before each timed pull (untimed), the same store pre-pulls
	// an image made of the first half of the layers (halfRef), so only
	// the second half is new. berth keeps the same store root, podman and
	// docker their stores; skopeo reuses the blobs already in the same OCI
	// layout, but umoci has no layer reuse and unpacks every layer.
	Half    bool
	gzipped int64 // compressed size of the layers
	reg     *registry.Registry
	owner   bool   // Close stops reg
	ref     string // host/repo:tag of the full image
	halfRef string // host/repo:tag of the image of its first half of layers
}

// NewPullScenario generates (or reuses from cache) the image, starts a
// registry under dir and pushes the image there, with a second tag for an
// image of its first half of layers (the same blobs). Close stops it.
func NewPullScenario(dir string, spec images.Spec) (*PullScenario, error) {
	img, err := images.CachedGenerated(spec)
	if err != nil {
		return nil, fmt.Errorf("generate image: %w", err)
	}
	reg, err := registry.Launch(dir)
	if err != nil {
		return nil, err
	}
	p := &PullScenario{Spec: spec, gzipped: img.TotalSize(), reg: reg, owner: true, ref: reg.Host + "/bench/gen:latest", halfRef: reg.Host + "/bench/gen:half"}
	fail := func(err error) (*PullScenario, error) { reg.Stop(); return nil, err }
	if err := pushOCI(img.OCIRef(), p.ref); err != nil {
		return fail(err)
	}
	half, err := writeHalfLayout(filepath.Join(dir, "half-layout"), img)
	if err != nil {
		return fail(fmt.Errorf("half image: %w", err))
	}
	if err := pushOCI(half, p.halfRef); err != nil {
		return fail(err)
	}
	return p, nil
}

func pushOCI(src, ref string) error {
	out, err := exec.Command("skopeo", "copy", "--preserve-digests", "--dest-tls-verify=false",
		src, "docker://"+ref).CombinedOutput()
	if err != nil {
		return fmt.Errorf("push fixture %s: %v: %s", src, err, out)
	}
	return nil
}

// writeHalfLayout writes an OCI layout (tag "half") of the image made of
// the first half of img's layers: the same layer blobs (symlinked), a
// config with their diff IDs and history. It returns its skopeo ref.
func writeHalfLayout(layout string, img *images.Image) (string, error) {
	k := len(img.Manifest.Layers) / 2
	if k == 0 || len(img.Config.RootFS.DiffIDs) != len(img.Manifest.Layers) {
		return "", fmt.Errorf("cannot halve an image of %d layers", len(img.Manifest.Layers))
	}
	blobs := filepath.Join(layout, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return "", err
	}
	put := func(mediaType string, v any) (ocispec.Descriptor, error) {
		b, err := json.Marshal(v)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
		return d, os.WriteFile(filepath.Join(blobs, d.Digest.Encoded()), b, 0o644)
	}
	config := img.Config
	config.RootFS.DiffIDs = slices.Clone(config.RootFS.DiffIDs[:k])
	if len(config.History) == len(img.Manifest.Layers) { // one entry per layer, none empty
		config.History = slices.Clone(config.History[:k])
	} else {
		config.History = nil
	}
	cd, err := put(ocispec.MediaTypeImageConfig, config)
	if err != nil {
		return "", err
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    cd,
		Layers:    slices.Clone(img.Manifest.Layers[:k]),
	}
	for _, l := range m.Layers {
		dst := filepath.Join(blobs, l.Digest.Encoded())
		if err := os.Symlink(img.BlobPath(l.Digest), dst); err != nil && !os.IsExist(err) {
			return "", err
		}
	}
	md, err := put(ocispec.MediaTypeImageManifest, m)
	if err != nil {
		return "", err
	}
	md.Annotations = map[string]string{ocispec.AnnotationRefName: "half"}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{md}}
	b, err := json.Marshal(idx)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(layout, "index.json"), b, 0o644); err != nil {
		return "", err
	}
	b, _ = json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := os.WriteFile(filepath.Join(layout, ocispec.ImageLayoutFile), b, 0o644); err != nil {
		return "", err
	}
	return "oci:" + layout + ":half", nil
}

// HalfPresent returns the variant of p measured with the first half of the
// layers already present (same registry; closing it does nothing).
func (p *PullScenario) HalfPresent() *PullScenario {
	h := *p
	h.Half, h.owner = true, false
	return &h
}

// Close stops the registry.
func (p *PullScenario) Close() error {
	if !p.owner {
		return nil
	}
	return p.reg.Stop()
}

// Name says what is pulled.
func (p *PullScenario) Name() string {
	what := fmt.Sprintf("pull %d-layer image (%d MB gzip, %d MB of files)", p.Spec.Layers, p.gzipped/1e6, p.Spec.Size/1e6)
	if p.Half {
		return what + ", half the layers present (skopeo+umoci: blobs reused, umoci unpacks all), with unpack"
	}
	return what + ", cold, with unpack"
}

// Setup prepares one puller.
func (p *PullScenario) Setup(env *Env) (Trial, error) {
	var t *pullTrial
	switch env.System.Name {
	case "berth":
		t = p.trial(env, func(root, ref string) error {
			return BerthPull(context.Background(), ref, root)
		}, nil)
	case "skopeo+umoci":
		t = p.trial(env, func(root, ref string) error {
			tag := "gen"
			if ref == p.halfRef {
				tag = "half"
			}
			if err := cmd("skopeo", "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+root+"/layout:"+tag); err != nil {
				return err
			}
			if ref == p.halfRef {
				return nil // pre-pull: umoci would unpack everything again anyway
			}
			return cmd("umoci", "raw", "unpack", "--image", root+"/layout:gen", root+"/rootfs")
		}, nil)
	case "podman":
		// podman refuses a runroot longer than 50 characters: keep it
		// short, one per store root, removed at teardown.
		runroots := map[string]string{}
		runroot := func(root string) (string, error) {
			if r, ok := runroots[root]; ok {
				return r, nil
			}
			r, err := os.MkdirTemp("/run", "pbr")
			if err == nil {
				runroots[root] = r
			}
			return r, err
		}
		t = p.trial(env, func(root, ref string) error {
			rr, err := runroot(root)
			if err != nil {
				return err
			}
			return cmd("podman", "--root", root+"/root", "--runroot", rr, "--tmpdir", root+"/tmp",
				"--storage-driver", "overlay", "--events-backend", "file", "--cgroup-manager", "cgroupfs",
				"pull", "--quiet", "--tls-verify=false", ref)
		}, nil)
		// podman writes these whatever --root says.
		var made []string
		for _, d := range []string{"/var/lib/containers", "/run/containers"} {
			if _, err := os.Stat(d); os.IsNotExist(err) {
				made = append(made, d)
			}
		}
		t.withTeardown(func() error {
			for _, d := range made {
				os.RemoveAll(d)
			}
			for _, r := range runroots {
				clearDir(r)
			}
			return nil
		})
	case "docker":
		// overlay2, as a real install has: the bench measures unpacking.
		d, err := dockerd.Launch(dockerd.Options{StorageDriver: "overlay2"})
		if err != nil {
			return nil, err
		}
		t = p.trial(env, func(_, ref string) error {
			return cmd("docker", "-H", d.Host, "pull", "--quiet", ref)
		}, func() {
			cmd("docker", "-H", d.Host, "rmi", "-f", p.ref)
			if p.Half {
				cmd("docker", "-H", d.Host, "rmi", "-f", p.halfRef)
			}
		}).withTeardown(d.Stop)
	default:
		return nil, fmt.Errorf("no pull for system %s", env.System.Name)
	}
	return t, nil
}

// pullTrial times the pull of the full image into a fresh directory
// (after an untimed pre-pull of the half image there when Half) and clears
// it afterwards (untimed).
type pullTrial struct {
	env      *Env
	ref      string
	halfRef  string // "": cold
	pull     func(root, ref string) error
	reset    func()
	teardown func() error
	n        int
}

func (p *PullScenario) trial(env *Env, pull func(root, ref string) error, reset func()) *pullTrial {
	t := &pullTrial{env: env, ref: p.ref, pull: pull, reset: reset}
	if p.Half {
		t.halfRef = p.halfRef
	}
	return t
}

func (t *pullTrial) withTeardown(f func() error) *pullTrial { t.teardown = f; return t }

func (t *pullTrial) Run() ([]Sample, error) {
	t.n++
	root := filepath.Join(t.env.Dir, fmt.Sprintf("p%d", t.n))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	var err error
	if t.halfRef != "" {
		if err = t.pull(root, t.halfRef); err != nil {
			err = fmt.Errorf("pre-pull of the half image: %w", err)
		}
	}
	var d time.Duration
	if err == nil {
		d, err = timed(func() error { return t.pull(root, t.ref) })
	}
	if t.reset != nil {
		t.reset()
	}
	clearDir(root)
	if err != nil {
		return nil, err
	}
	return []Sample{{D: d}}, nil
}

func (t *pullTrial) Teardown() error {
	if t.teardown != nil {
		return t.teardown()
	}
	return nil
}

// clearDir unmounts whatever a puller left mounted under dir, then removes it.
func clearDir(dir string) {
	if entries, err := mountinfo.Read(); err == nil {
		for _, mp := range mountinfo.Under(entries, dir) {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	}
	os.RemoveAll(dir)
}

func cmd(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
