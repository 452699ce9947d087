package change_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/change"
)

func TestApply(t *testing.T) {
	c := &container.Config{Env: []string{"PATH=/bin", "A=0"}, Cmd: []string{"sh"}}
	err := change.Apply(c, []string{
		`CMD ["/app", "-v"]`, "ENTRYPOINT /entry.sh", "ENV A=1 B=\"two words\"", "ENV C 3",
		"EXPOSE 80 53/udp", "LABEL k=v", "USER nobody:nogroup", `VOLUME ["/data"]`, "VOLUME /a /b",
		"WORKDIR /w", "stopsignal SIGINT",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Cmd, []string{"/app", "-v"}) || !slices.Equal(c.Entrypoint, []string{"/bin/sh", "-c", "/entry.sh"}) ||
		!slices.Equal(c.Env, []string{"PATH=/bin", "A=1", "B=two words", "C=3"}) || c.Labels["k"] != "v" ||
		c.User != "nobody:nogroup" || c.WorkingDir != "/w" || c.StopSignal != "SIGINT" || len(c.Volumes) != 3 {
		t.Errorf("config: %+v", c)
	}
	if _, ok := c.ExposedPorts[network.MustParsePort("80/tcp")]; !ok || len(c.ExposedPorts) != 2 {
		t.Errorf("ports: %v", c.ExposedPorts)
	}
	for _, bad := range []string{"RUN echo", "CMD [not json", "ENV", "EXPOSE notaport", `LABEL a="unterminated`} {
		if err := change.Apply(&container.Config{}, []string{bad}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestApplyImageConfig(t *testing.T) {
	c := ocispec.ImageConfig{Env: []string{"PATH=/bin"}, ExposedPorts: map[string]struct{}{"8080/tcp": {}}, User: "root"}
	h, err := change.ApplyImageConfig(&c, []string{"EXPOSE 80", "CMD /hello"})
	if err != nil || h != nil {
		t.Fatal(h, err)
	}
	if _, ok := c.ExposedPorts["80/tcp"]; !ok || len(c.ExposedPorts) != 2 || c.User != "root" ||
		!slices.Equal(c.Cmd, []string{"/bin/sh", "-c", "/hello"}) || !slices.Equal(c.Env, []string{"PATH=/bin"}) {
		t.Errorf("config: %+v", c)
	}
}

func TestHealthcheck(t *testing.T) {
	for _, tc := range []struct {
		change string
		want   *container.HealthConfig
		err    string
	}{
		{change: "HEALTHCHECK --interval=5s --timeout=2s --start-period=1s --retries=4 CMD wget -q localhost",
			want: &container.HealthConfig{Test: []string{"CMD-SHELL", "wget -q localhost"}, Interval: 5 * time.Second, Timeout: 2 * time.Second, StartPeriod: time.Second, Retries: 4}},
		{change: `HEALTHCHECK CMD ["true"]`, want: &container.HealthConfig{Test: []string{"CMD", "true"}}},
		{change: "healthcheck NONE", want: &container.HealthConfig{Test: []string{"NONE"}}},
		{change: "HEALTHCHECK --interval=x CMD true", err: "interval"},
		{change: "HEALTHCHECK --bogus=1 CMD true", err: "bogus"},
	} {
		var c container.Config
		err := change.Apply(&c, []string{tc.change})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errdefs.IsInvalidArgument(err) {
				t.Errorf("%q: %v, want an invalid-argument error about %s", tc.change, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.change, err)
			continue
		}
		if !reflect.DeepEqual(c.Healthcheck, tc.want) {
			t.Errorf("%q: %+v, want %+v", tc.change, c.Healthcheck, tc.want)
		}
	}
	var oc ocispec.ImageConfig
	h, err := change.ApplyImageConfig(&oc, []string{"HEALTHCHECK --retries=2 CMD true"})
	if err != nil || h == nil || h.Retries != 2 {
		t.Errorf("ApplyImageConfig: %+v %v", h, err)
	}
}
