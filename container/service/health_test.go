package service

import (
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

func TestMergeHealthcheck(t *testing.T) {
	img := &container.HealthConfig{Test: []string{"CMD", "check"}, Interval: time.Second, Timeout: 2 * time.Second, Retries: 4}
	cfg := &container.Config{}
	MergeHealthcheck(cfg, img)
	if cfg.Healthcheck == nil || cfg.Healthcheck.Interval != time.Second || cfg.Healthcheck == img {
		t.Errorf("inherited: %+v", cfg.Healthcheck)
	}
	cfg = &container.Config{Healthcheck: &container.HealthConfig{Interval: 5 * time.Second}}
	MergeHealthcheck(cfg, img)
	if h := cfg.Healthcheck; h.Interval != 5*time.Second || h.Timeout != 2*time.Second || h.Retries != 4 || strings.Join(h.Test, " ") != "CMD check" {
		t.Errorf("merged: %+v", h)
	}
	cfg = &container.Config{Healthcheck: &container.HealthConfig{Test: []string{"NONE"}}}
	MergeHealthcheck(cfg, img)
	if probeCommand(cfg) != nil {
		t.Errorf("NONE kept a probe: %v", probeCommand(cfg))
	}
}

func TestProbeCommand(t *testing.T) {
	for _, tc := range []struct {
		cfg  container.Config
		want string
	}{
		{container.Config{Healthcheck: &container.HealthConfig{Test: []string{"CMD", "a", "b c"}}}, "a|b c"},
		{container.Config{Healthcheck: &container.HealthConfig{Test: []string{"CMD-SHELL", "curl -f x || exit 1"}}}, "/bin/sh|-c|curl -f x || exit 1"},
		{container.Config{Shell: []string{"/bin/bash", "-ec"}, Healthcheck: &container.HealthConfig{Test: []string{"CMD-SHELL", "true"}}}, "/bin/bash|-ec|true"},
		{container.Config{}, ""},
	} {
		if got := strings.Join(probeCommand(&tc.cfg), "|"); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.cfg.Healthcheck, got, tc.want)
		}
	}
}

func TestValidateHealthcheck(t *testing.T) {
	for _, h := range []*container.HealthConfig{
		{Interval: time.Microsecond},
		{Timeout: time.Nanosecond},
		{Retries: -1},
		{Test: []string{"CMD"}},
		{Test: []string{"SHELL", "x"}},
	} {
		if err := ValidateHealthcheck(h); err == nil {
			t.Errorf("accepted %+v", h)
		}
	}
	if err := ValidateHealthcheck(&container.HealthConfig{Test: []string{"NONE"}}); err != nil {
		t.Error(err)
	}
}

func TestLimitedBuffer(t *testing.T) {
	b := &limitedBuffer{max: 5}
	for _, s := range []string{"abc", "defgh", "ij"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("write %q: %d %v", s, n, err)
		}
	}
	if b.String() != "abcde" {
		t.Errorf("%q", b.String())
	}
}
