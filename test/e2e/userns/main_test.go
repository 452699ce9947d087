// Package userns_test runs berthd with --userns-remap end to end, as
// root: containers' root is an unprivileged range of the host, image
// layers read as the image's owners inside, and what containers write is
// the range's on the host but the image's again in a commit.
package userns_test

import (
	"testing"

	"github.com/berth-dev/berth/internal/testutil/berthd"
)

func TestMain(m *testing.M) { berthd.Main(m) }
