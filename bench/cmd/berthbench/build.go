package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/bench"
	"github.com/berth-dev/berth/internal/testutil/images"
)

// runBuild measures `build` of the small Dockerfile: berthd (with
// the berth and the docker CLI) against a private dockerd's classic
// builder and BuildKit, and podman.
func runBuild(b *strings.Builder, f engineFlags, work, only string) error {
	if f.buildN <= 0 {
		return nil
	}
	img, err := images.CachedBusybox(images.BusyboxOptions{})
	if err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	bin, err := filepath.Abs(f.binDir)
	if err != nil {
		return err
	}
	cfg := bench.EngineConfig{BinDir: bin, Archive: img.Archive, BerthdArgs: f.berthdArgs}
	b.WriteString("## Build: berthd vs dockerd 20.10 (classic builder, BuildKit) vs podman\n\n")
	b.WriteString("The Dockerfile: `" + strings.ReplaceAll(strings.TrimSpace(bench.BuildDockerfile), "\n", " ⏎ ") + "`. cold = `build --no-cache`, cached = the same build again, one file changed = the COPY's file changed (COPY and the last RUN run again). berthd+docker-cli and docker use `DOCKER_BUILDKIT=0`, docker-buildkit `DOCKER_BUILDKIT=1`; every build has `--network none`.\n\n")
	return runSuite(b, f.buildN, work, filter(bench.BuildSystems(cfg), only), []bench.Scenario{bench.BuildScenario{Config: cfg}})
}
