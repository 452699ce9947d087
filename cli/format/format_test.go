package format

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
)

func TestDisplayablePortsGroupsRanges(t *testing.T) {
	ip := netip.MustParseAddr("0.0.0.0")
	got := DisplayablePorts([]container.PortSummary{
		{IP: ip, PrivatePort: 81, PublicPort: 8081, Type: "tcp"},
		{IP: ip, PrivatePort: 80, PublicPort: 8080, Type: "tcp"},
		{PrivatePort: 443, Type: "tcp"},
		{PrivatePort: 53, Type: "udp"},
	})
	if want := "443/tcp, 53/udp, 0.0.0.0:8080-8081->80-81/tcp"; got != want {
		t.Fatalf("ports %q, want %q", got, want)
	}
}

func TestTableHeadersAndAlignment(t *testing.T) {
	var b bytes.Buffer
	rows := []Context{Container{C: container.Summary{ID: strings.Repeat("a", 64), Names: []string{"/web"},
		Command: "sleep 600 and a long tail", Image: "busybox"}, Trunc: true}}
	if err := Write(&b, "table {{.ID}}\t{{.Names}}\t{{.Command}}", rows, ContainerHeader); err != nil {
		t.Fatal(err)
	}
	want := "CONTAINER ID   NAMES     COMMAND\naaaaaaaaaaaa   web       \"sleep 600 and a lon…\"\n"
	if b.String() != want {
		t.Fatalf("table:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	if err := Write(&b, `{{.Names}}\t{{upper .Image}}`, rows, ContainerHeader); err != nil {
		t.Fatal(err)
	}
	if b.String() != "web\tBUSYBOX\n" {
		t.Fatalf("plain template: %q", b.String())
	}
	if err := Write(&b, "{{.Nope", rows, nil); err == nil || !strings.HasPrefix(err.Error(), "template parsing error") {
		t.Fatalf("bad template: %v", err)
	}
}

func TestNeedsSize(t *testing.T) {
	for text, want := range map[string]bool{PsTable: false, PsTableSize: true, "{{json .}}": true, "{{.Names}}": false} {
		if got := NeedsSize(text); got != want {
			t.Errorf("NeedsSize(%q) = %v", text, got)
		}
	}
}
