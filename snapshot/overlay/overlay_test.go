package overlay

import (
	"context"
	"testing"

	"github.com/berth-dev/berth/snapshot"
	"github.com/berth-dev/berth/snapshot/testsuite"
)

func TestOverlay(t *testing.T) {
	testsuite.Run(t, func(ctx context.Context, root string) (snapshot.Snapshotter, error) {
		return New(root)
	})
}
