package pull_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/image/content/local"
	"github.com/berth-dev/berth/image/pull"
	"github.com/berth-dev/berth/image/reference"
	"github.com/berth-dev/berth/image/registry"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/images"
	treg "github.com/berth-dev/berth/internal/testutil/registry"
	"github.com/berth-dev/berth/snapshot/overlay"
)

// BenchmarkPullGenerated pulls the full generated 20-layer image (~200 MB
// of files) from a loopback docker-registry into an empty store, unpack
// included, and reports compressed MB/s.
func BenchmarkPullGenerated(b *testing.B) {
	testutil.RequireRoot(b)
	img := images.Generated(b, images.Spec{Seed: 7})
	r := treg.Start(b)
	r.Push(b, img.Layout, "gen/big:latest")
	ref := reference.MustParse(r.Host + "/gen/big:latest")
	for _, conc := range []int{2, 4, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) { benchPull(b, ref, img.TotalSize(), conc) })
	}
}

// BenchmarkPullSmall is the bench suite's cold 3-layer 50 MB pull, for
// profiling: go test -run - -bench PullSmall -cpuprofile cpu.out.
func BenchmarkPullSmall(b *testing.B) {
	testutil.RequireRoot(b)
	img := images.Generated(b, images.Spec{Seed: 1, Layers: 3, Size: 50 << 20, Compressions: []images.Compression{images.Gzip}})
	r := treg.Start(b)
	r.Push(b, img.Layout, "gen/small:latest")
	benchPull(b, reference.MustParse(r.Host+"/gen/small:latest"), img.TotalSize(), 0)
}

func benchPull(b *testing.B, ref reference.Named, size int64, conc int) {
	b.SetBytes(size)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root := b.TempDir()
		cs, err := local.NewStore(filepath.Join(root, "content"))
		if err != nil {
			b.Fatal(err)
		}
		sn, err := overlay.New(filepath.Join(root, "snapshots"))
		if err != nil {
			b.Fatal(err)
		}
		client := registry.New(registry.Options{ConfigPath: filepath.Join(root, "none.json")})
		b.StartTimer()
		res, err := pull.Pull(context.Background(), ref, pull.Options{Registry: client, Content: cs, Snapshots: sn, Concurrency: conc})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.Logf("%d layers, %.1f MB compressed, %.1f MB unpacked, %v, %.0f MB/s",
			len(res.Layers), float64(res.Downloaded)/1e6, float64(res.Unpacked)/1e6, res.Duration, res.BytesPerSecond()/1e6)
		sn.Close()
		b.StartTimer()
	}
}
