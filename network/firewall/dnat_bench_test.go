package firewall

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/network/netns"
)

// BenchmarkConnectPastMappings times a TCP connect to a port that is not
// published, in a network namespace whose table has 0 or 1000 published
// ports: every new connection from the host walks the whole output chain
// (and every one from outside the prerouting chain).
func BenchmarkConnectPastMappings(b *testing.B) {
	testutil.RequireRoot(b)
	for _, n := range []int{0, 1000} {
		b.Run(fmt.Sprintf("mappings=%d", n), func(b *testing.B) { benchConnect(b, n) })
	}
}

func benchConnect(b *testing.B, n int) {
	ns := filepath.Join(b.TempDir(), "ns")
	if err := netns.Create(ns); err != nil {
		b.Fatal(err)
	}
	defer netns.Remove(ns)
	var maps []Mapping
	for i := range n {
		maps = append(maps, Mapping{Proto: "tcp", HostPort: uint16(30000 + i), ContainerIP: netip.MustParseAddr("10.5.0.2"), ContainerPort: 80, Bridge: "brX"})
	}
	err := netns.Do(ns, func() error {
		if err := Apply("berth-bench", []Bridge{{Device: "brX", Subnet: netip.MustParsePrefix("10.5.0.0/24")}}, maps); err != nil {
			return err
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		b.ResetTimer()
		for range b.N {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				return fmt.Errorf("connect: %w", err)
			}
			c.Close()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
