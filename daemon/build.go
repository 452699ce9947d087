package daemon

import (
	"context"
	"io"
	"path/filepath"

	"github.com/berth-dev/berth/api/server"
	"github.com/berth-dev/berth/build"
	"github.com/berth-dev/berth/image/service"
)

// newBuilder opens the Dockerfile builder: its cache under the data root,
// RUN steps through berth-runtime with state under the exec root.
func newBuilder(cfg Config, images *service.Service) (*build.Builder, error) {
	rt, err := findBinary("berth-runtime")
	if err != nil {
		return nil, err
	}
	return build.New(build.Config{
		Images:         images,
		Runtime:        rt,
		Dir:            filepath.Join(cfg.DataRoot, "build"),
		RunRoot:        filepath.Join(cfg.ExecRoot, "build"),
		CgroupParent:   cfg.CgroupParent,
		MaxContextSize: cfg.MaxBuildContext,
	})
}

// buildBackend is server.BuildBackend on the builder.
type buildBackend struct {
	b *build.Builder
}

var _ server.BuildBackend = buildBackend{}

func (bb buildBackend) Build(ctx context.Context, o server.BuildOptions, body io.Reader, out io.Writer) (string, error) {
	res, err := bb.b.Build(ctx, build.Options{
		Dockerfile: o.Dockerfile, Tags: o.Tags, BuildArgs: o.BuildArgs, Labels: o.Labels,
		Target: o.Target, NoCache: o.NoCache, Pull: o.Pull, CacheFrom: o.CacheFrom, NetworkMode: o.NetworkMode,
		Secrets: o.Secrets, Platform: o.Platform,
	}, body, out)
	return res.ID, err
}

func (buildBackend) ExitCode(err error) int { return build.ExitCode(err) }

func (bb buildBackend) PruneCache(ctx context.Context, all bool) ([]string, error) {
	return bb.b.PruneCache(ctx, all)
}
