package apply

import (
	"bytes"
	"context"
	"testing"
)

// FuzzApply feeds arbitrary bytes to Apply as a layer, in both modes. It
// must never panic and never change anything outside root (the sandbox's
// canary directory is checked after every input).
func FuzzApply(f *testing.F) {
	seeds := [][]byte{
		layer(f, dir("etc"), reg("etc/passwd", "root:x:0:0"), sym("bin", "usr/bin"), link("etc/pw", "etc/passwd")),
		layer(f, reg("a/.wh.b", ""), reg("c/.wh..wh..opq", ""), reg(".wh..wh.plnk", "")),
		layer(f, sym("evil", "/../../.."), reg("evil/x", "x"), link("y", "evil/x"), reg("evil/.wh.z", "")),
		layer(f, reg("../x", "x")),
		layer(f, sym("d", ".."), dir("d/d"), reg("d/d/f", "f"), dir("d"), reg("d", "f")),
		rawTar(rawEntry("x", 'x', paxRecord("path", "/a/../../b")+paxRecord("SCHILY.xattr.user.a", "v")), rawEntry("q", '0', "data")),
	}
	for _, s := range seeds {
		f.Add(false, s)
		f.Add(true, s)
	}
	f.Fuzz(func(t *testing.T, overlay bool, data []byte) {
		s := newSandbox(t)
		opts := Options{
			Overlay:      overlay,
			Devices:      DevicesSkip, // no stray device nodes if a worker dies mid-input
			MaxEntries:   1000,
			MaxFileSize:  1 << 20,
			MaxTotalSize: 4 << 20,
			NoSync:       true, // a throwaway directory: the fuzzer's speed matters
		}
		Apply(context.Background(), s.root, bytes.NewReader(data), opts)
	})
}
