package server

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// listBackend is a NetworkBackend with fixed networks that records the
// last create request; its other methods are not called.
type listBackend struct {
	NetworkBackend
	nets    []network.Inspect
	created *network.CreateRequest
}

func (b *listBackend) NetworkList(context.Context) ([]network.Inspect, error) { return b.nets, nil }

func (b *listBackend) NetworkCreate(_ context.Context, req network.CreateRequest) (network.CreateResponse, error) {
	b.created = &req
	return network.CreateResponse{ID: "new"}, nil
}

func networkServer(t *testing.T, b *listBackend) (*client.Client, string) {
	s := New(Config{Version: "test"}, Backends{Networks: b})
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	c, err := client.New(client.WithHost("tcp://"+strings.TrimPrefix(hs.URL, "http://")), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, hs.URL
}

// TestNetworkListNameAndIDFilters: name and id filters match as dockerd's
// filters.Match does, exactly or as unanchored regular expressions, as
// `docker network ls -f name=^n1 -f id=4` asks.
func TestNetworkListNameAndIDFilters(t *testing.T) {
	b := &listBackend{}
	for _, n := range []struct{ name, id string }{
		{"n1", "4688aa"}, {"xn1", "1234bb"}, {"nac", "9999cc"}, {"a.b", "0000dd"}, {"bridge", "5555ee"},
	} {
		b.nets = append(b.nets, network.Inspect{Network: network.Network{Name: n.name, ID: n.id}})
	}
	c, _ := networkServer(t, b)
	for _, tc := range []struct {
		key, value string
		want       []string
	}{
		{"name", "^n1", []string{"n1"}},
		{"name", "n1", []string{"n1", "xn1"}},
		{"name", "n.c", []string{"nac"}},
		{"name", "a.b", []string{"a.b"}},
		{"name", "[", nil}, // not an expression: exact names only
		{"id", "4", []string{"n1", "xn1"}},
		{"id", "^4688", []string{"n1"}},
		{"id", "bb$", []string{"xn1"}},
		{"id", "9999cc", []string{"nac"}},
	} {
		res, err := c.NetworkList(context.Background(), client.NetworkListOptions{Filters: make(client.Filters).Add(tc.key, tc.value)})
		if err != nil {
			t.Fatalf("%s=%s: %v", tc.key, tc.value, err)
		}
		var got []string
		for _, n := range res.Items {
			got = append(got, n.Name)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("ls -f %s=%s: %v, want %v", tc.key, tc.value, got, tc.want)
		}
	}
}
