package runopts

import (
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/docker/cli/opts"
	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	"github.com/spf13/pflag"
)

// extraOpts are docker run's device, block I/O, realtime, annotation and
// Windows-only resource flags: the daemon applies or refuses each.
type extraOpts struct {
	deviceCgroupRules         opts.ListOpts
	readBps, writeBps         opts.ThrottledeviceOpt
	readIOps, writeIOps       opts.ThrottledeviceOpt
	weightDevice              opts.WeightdeviceOpt
	cpuRtPeriod, cpuRtRuntime int64
	cpuCount, cpuPercent      int64
	ioMaxBandwidth            opts.MemBytes
	ioMaxIOps                 uint64
	kernelMemory              opts.MemBytes
	annotations               *opts.MapOpts
	gpus                      opts.GpuOpts
	healthStartInterval       time.Duration
}

var deviceCgroupRuleRe = regexp.MustCompile(`^[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}$`)

func validateDeviceCgroupRule(v string) (string, error) {
	if deviceCgroupRuleRe.MatchString(v) {
		return v, nil
	}
	return v, fmt.Errorf("invalid device cgroup format '%s'", v)
}

func (x *extraOpts) addFlags(fs *pflag.FlagSet) {
	x.deviceCgroupRules = opts.NewListOpts(validateDeviceCgroupRule)
	x.readBps = opts.NewThrottledeviceOpt(opts.ValidateThrottleBpsDevice)
	x.writeBps = opts.NewThrottledeviceOpt(opts.ValidateThrottleBpsDevice)
	x.readIOps = opts.NewThrottledeviceOpt(opts.ValidateThrottleIOpsDevice)
	x.writeIOps = opts.NewThrottledeviceOpt(opts.ValidateThrottleIOpsDevice)
	x.weightDevice = opts.NewWeightdeviceOpt(opts.ValidateWeightDevice)
	x.annotations = opts.NewMapOpts(nil, nil)
	fs.Var(&x.deviceCgroupRules, "device-cgroup-rule", "Add a rule to the cgroup allowed devices list")
	fs.Var(&x.readBps, "device-read-bps", "Limit read rate (bytes per second) from a device")
	fs.Var(&x.writeBps, "device-write-bps", "Limit write rate (bytes per second) to a device")
	fs.Var(&x.readIOps, "device-read-iops", "Limit read rate (IO per second) from a device")
	fs.Var(&x.writeIOps, "device-write-iops", "Limit write rate (IO per second) to a device")
	fs.Var(&x.weightDevice, "blkio-weight-device", "Block IO weight (relative device weight)")
	fs.Int64Var(&x.cpuRtPeriod, "cpu-rt-period", 0, "Limit CPU real-time period in microseconds")
	fs.Int64Var(&x.cpuRtRuntime, "cpu-rt-runtime", 0, "Limit CPU real-time runtime in microseconds")
	fs.Int64Var(&x.cpuCount, "cpu-count", 0, "CPU count (Windows only)")
	fs.Int64Var(&x.cpuPercent, "cpu-percent", 0, "CPU percent (Windows only)")
	fs.Var(&x.ioMaxBandwidth, "io-maxbandwidth", "Maximum IO bandwidth limit for the system drive (Windows only)")
	fs.Uint64Var(&x.ioMaxIOps, "io-maxiops", 0, "Maximum IOps limit for the system drive (Windows only)")
	fs.Var(&x.kernelMemory, "kernel-memory", "Kernel memory limit (ignored: see the warning)")
	fs.Var(x.annotations, "annotation", "Add an annotation to the container (passed through to the OCI runtime)")
	fs.Var(&x.gpus, "gpus", "GPU devices to add to the container ('all' to pass all GPUs)")
	fs.DurationVar(&x.healthStartInterval, "health-start-interval", 0, "Time between running the check during the start period (ms|s|m|h) (default 0s)")
}

// apply puts the flags into the request. The daemon no longer takes a
// kernel memory limit: the CLI says so rather than dropping it quietly.
func (x *extraOpts) apply(cfg *container.Config, hc *container.HostConfig) error {
	r := &hc.Resources
	// Unset lists stay null, as docker sends them.
	if rules := x.deviceCgroupRules.GetSlice(); len(rules) > 0 {
		r.DeviceCgroupRules = rules
	}
	for _, l := range []struct {
		dst *[]*blkiodev.ThrottleDevice
		src *opts.ThrottledeviceOpt
	}{{&r.BlkioDeviceReadBps, &x.readBps}, {&r.BlkioDeviceWriteBps, &x.writeBps}, {&r.BlkioDeviceReadIOps, &x.readIOps}, {&r.BlkioDeviceWriteIOps, &x.writeIOps}} {
		if v := l.src.GetList(); len(v) > 0 {
			*l.dst = v
		}
	}
	if w := x.weightDevice.GetList(); len(w) > 0 {
		r.BlkioWeightDevice = w
	}
	r.CPURealtimePeriod, r.CPURealtimeRuntime = x.cpuRtPeriod, x.cpuRtRuntime
	r.CPUCount, r.CPUPercent = x.cpuCount, x.cpuPercent
	r.IOMaximumBandwidth, r.IOMaximumIOps = uint64(x.ioMaxBandwidth), x.ioMaxIOps
	r.DeviceRequests = x.gpus.Value()
	if a := x.annotations.GetAll(); len(a) > 0 {
		hc.Annotations = a
	}
	if x.healthStartInterval < 0 {
		return fmt.Errorf("--health-start-interval cannot be negative")
	}
	if x.healthStartInterval > 0 {
		if cfg.Healthcheck == nil {
			cfg.Healthcheck = &container.HealthConfig{}
		}
		cfg.Healthcheck.StartInterval = x.healthStartInterval
	}
	if x.kernelMemory != 0 {
		fmt.Fprintln(os.Stderr, "WARNING: --kernel-memory: kernel memory limits are not supported by the daemon API any more; the limit is discarded.")
	}
	return nil
}

// ParseRestartPolicy parses --restart (no, always, unless-stopped,
// on-failure[:N]) as docker does, for `update` too.
func ParseRestartPolicy(policy string) (container.RestartPolicy, error) {
	return parseRestartPolicy(policy)
}
