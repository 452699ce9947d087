// Package spec turns a container's Docker configuration (moby's
// container.Config and container.HostConfig, merged with its image's
// config) into the OCI runtime spec that berth-runtime runs, the way dockerd
// 20.10 builds it for the same `docker run`: process args, env, user and
// groups, capabilities, the default seccomp profile, mounts, devices,
// namespaces, cgroup resources and rlimits. It also writes the container's
// /etc/hosts, /etc/hostname and /etc/resolv.conf into the container's own
// directory, and creates the working directory inside the rootfs.
//
// Bad input is reported as errors wrapping errdefs.ErrInvalidArgument, with
// dockerd's wording where dockerd has one. Validate checks what can be
// checked without the rootfs (at create); Generate needs the mounted rootfs
// (at start) because users and groups resolve against its /etc files.
package spec
