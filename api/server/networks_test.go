package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"reflect"
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
	return serveBackends(t, Backends{Networks: b})
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

// TestNetworkCreateIPAMMessages: a malformed or misplaced address in
// `docker network create --subnet/--ip-range/--gateway/--aux-address`
// gets dockerd's ValidateIPAM message and a 400, not a JSON decode error;
// a good config reaches the backend parsed.
func TestNetworkCreateIPAMMessages(t *testing.T) {
	b := &listBackend{}
	_, url := networkServer(t, b)
	create := func(ipam string) (int, string) {
		body := `{"Name":"bad","IPAM":{"Driver":"default","Config":[` + ipam + `]}}`
		resp, err := http.Post(url+"/networks/create", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct{ Message string }
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Message
	}
	for _, tc := range []struct{ ipam, want string }{
		{`{"Subnet":"10.240.1.0/33"}`, "invalid network config:\ninvalid subnet 10.240.1.0/33: invalid CIDR block notation"},
		{`{"Subnet":"foo"}`, "invalid network config:\ninvalid subnet foo: invalid CIDR block notation"},
		{`{"Subnet":"10.240.1.5/24"}`, "invalid network config:\ninvalid subnet 10.240.1.5/24: it should be 10.240.1.0/24"},
		{`{"Subnet":"10.240.1.0/24","Gateway":"foo"}`, "invalid network config:\ninvalid gateway foo: invalid address"},
		{`{"Subnet":"10.240.1.0/24","Gateway":"10.9.9.9"}`, "invalid network config:\ninvalid gateway 10.9.9.9: parent subnet 10.240.1.0/24 doesn't contain this address"},
		{`{"Subnet":"10.240.1.0/24","IPRange":"bar"}`, "invalid network config:\ninvalid ip-range bar: invalid CIDR block notation"},
		{`{"Subnet":"10.240.1.0/24","AuxiliaryAddresses":{"h":"x"}}`, "invalid network config:\ninvalid auxiliary address h: invalid address"},
		{`{"Subnet":"10.240.1.0/24","IPRange":"10.240.0.0/16","Gateway":"fd00::1"}`, "invalid network config:\n" +
			"* invalid ip-range 10.240.0.0/16: CIDR block is bigger than its parent subnet 10.240.1.0/24\n" +
			"* invalid gateway fd00::1: parent subnet is an IPv4 block"},
	} {
		if code, msg := create(tc.ipam); code != http.StatusBadRequest || msg != tc.want {
			t.Errorf("%s: %d %q, want 400 %q", tc.ipam, code, msg, tc.want)
		}
	}
	if b.created != nil {
		t.Fatalf("a bad config reached the backend: %+v", b.created)
	}
	if code, msg := create(`{"Subnet":"10.240.1.0/24","IPRange":"10.240.1.128/25","Gateway":"10.240.1.254"}`); code != http.StatusCreated {
		t.Fatalf("good config: %d %s", code, msg)
	}
	want := network.IPAMConfig{Subnet: netip.MustParsePrefix("10.240.1.0/24"), IPRange: netip.MustParsePrefix("10.240.1.128/25"), Gateway: netip.MustParseAddr("10.240.1.254")}
	if b.created == nil || b.created.Name != "bad" || b.created.IPAM.Driver != "default" || len(b.created.IPAM.Config) != 1 || !reflect.DeepEqual(b.created.IPAM.Config[0], want) {
		t.Errorf("backend got %+v", b.created)
	}
}
