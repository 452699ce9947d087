package spec

import "testing"

func TestEmbeddedResolvConf(t *testing.T) {
	host := []byte("nameserver 10.0.0.1\nsearch example.org\noptions edns0\n")
	for _, c := range []struct {
		search, options []string
		want            string
	}{
		{nil, nil, "nameserver 127.0.0.11\nsearch example.org\noptions edns0 ndots:0\n"},
		{[]string{"a.test"}, []string{"ndots:2"}, "nameserver 127.0.0.11\nsearch a.test\noptions ndots:2\n"},
		{[]string{"."}, nil, "nameserver 127.0.0.11\noptions edns0 ndots:0\n"},
	} {
		if got := string(EmbeddedResolvConf(host, c.search, c.options)); got != c.want {
			t.Errorf("%v %v: %q, want %q", c.search, c.options, got, c.want)
		}
	}
}
