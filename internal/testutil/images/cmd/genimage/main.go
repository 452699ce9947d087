// Command genimage writes a generated multi-layer fixture image (an OCI
// layout, optionally a docker-archive, and the expected tree) for the
// benchmarks, or prints where the cached one lives.
//
//	go run ./internal/testutil/images/cmd/genimage -size 200M -layers 20 -out /tmp/big
//	go run ./internal/testutil/images/cmd/genimage -cached   # use/fill the test cache
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/testutil/images"
)

func main() {
	var (
		seed    = flag.Int64("seed", 1, "seed of the image")
		layers  = flag.Int("layers", 20, "number of layers")
		size    = flag.String("size", "200M", "content size before compression (K, M, G suffixes)")
		archive = flag.Bool("archive", false, "also write a docker-archive")
		out     = flag.String("out", "", "directory to write (must not exist); empty: use the test cache")
	)
	flag.Parse()
	n, err := parseSize(*size)
	if err != nil {
		fail(err)
	}
	spec := images.Spec{Seed: *seed, Layers: *layers, Size: n, Archive: *archive}
	start := time.Now()
	var img *images.Image
	if *out == "" {
		img, err = images.CachedGenerated(spec)
	} else {
		if _, err := os.Stat(*out); err == nil {
			fail(fmt.Errorf("%s exists", *out))
		}
		img, err = images.Generate(*out, spec)
	}
	if err != nil {
		fail(err)
	}
	fmt.Printf("layout   %s\nref      %s\n", img.Layout, img.OCIRef())
	if img.Archive != "" {
		fmt.Printf("archive  %s\n", img.Archive)
	}
	fmt.Printf("manifest %s\nlayers   %d, %d bytes compressed, %d paths in the tree\ntime     %s\n",
		img.Top.Digest, len(img.Layers), img.TotalSize(), len(img.Tree.Entries), time.Since(start).Round(time.Millisecond))
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "genimage:", err)
	os.Exit(1)
}
