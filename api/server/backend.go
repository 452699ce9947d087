package server

import (
	"context"
	"io"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/api/types/system"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-dev/berth/api/filters"
	"github.com/berth-dev/berth/image/progress"
)

// ImageBackend is the image side of the engine, in the Engine API's
// terms. Errors carry errdefs categories (NotFound, Conflict, ...), which
// become HTTP statuses.
type ImageBackend interface {
	// ImageList is GET /images/json. Filters were validated (dangling,
	// reference, label, before, since, until).
	ImageList(ctx context.Context, opts ImageListOptions) ([]image.Summary, error)
	// ImageInspect is GET /images/{name}/json.
	ImageInspect(ctx context.Context, name string) (image.InspectResponse, error)
	// ImageHistory is GET /images/{name}/history, newest first.
	ImageHistory(ctx context.Context, name string) ([]image.HistoryResponseItem, error)
	// ImageTag points target ("repo:tag") at the image source.
	ImageTag(ctx context.Context, source, target string) error
	// ImageRemove is DELETE /images/{name}: Docker's Untagged/Deleted
	// lines. An image a container uses is a Conflict unless force.
	ImageRemove(ctx context.Context, name string, force, noPrune bool) ([]image.DeleteResponse, error)
	// ImagePrune is POST /images/prune (filters dangling, until, label).
	ImagePrune(ctx context.Context, f filters.Args) (image.PruneReport, error)
	// ImagePull fetches ref ("name:tag" or "name@digest") for platform
	// ("" = the host's), reporting Docker's pull progress to out.
	ImagePull(ctx context.Context, ref, platform string, auth *registry.AuthConfig, out progress.Reporter) error
	// ImagePush uploads the local image ref, reporting to out.
	ImagePush(ctx context.Context, ref string, auth *registry.AuthConfig, out progress.Reporter) error
	// ImageImport makes a one-layer image of the root filesystem tar r,
	// named ref when not "", with Dockerfile changes applied. It returns
	// the image ID.
	ImageImport(ctx context.Context, r io.Reader, ref string, changes []string) (string, error)
	// ImageLoad loads a docker-archive or OCI layout tar and returns the
	// "Loaded image: ..." lines.
	ImageLoad(ctx context.Context, r io.Reader) ([]string, error)
	// ImageSave writes the named images as a docker-archive tar to w.
	ImageSave(ctx context.Context, w io.Writer, names []string) error
	// Login checks auth against its registry and stores the credentials.
	Login(ctx context.Context, auth registry.AuthConfig) (registry.AuthResponse, error)
}

// ImageListOptions are the parameters of GET /images/json.
type ImageListOptions struct {
	All        bool
	SharedSize bool
	Manifests  bool
	Filters    filters.Args
}

// SystemBackend answers /info and /system/df.
type SystemBackend interface {
	Info(ctx context.Context) (system.Info, error)
	// DiskUsage fills the usage of the object types asked for (all when
	// none); Items only when verbose.
	DiskUsage(ctx context.Context, opts DiskUsageOptions) (system.DiskUsage, error)
	// KernelVersion is `uname -r` (for /version).
	KernelVersion() string
}

// DiskUsageOptions are the parameters of GET /system/df.
type DiskUsageOptions struct {
	Types   []system.DiskUsageObject
	Verbose bool
}

// EventsBackend is the events bus (daemon/events.Bus).
type EventsBackend interface {
	// Subscribe returns the remembered events, oldest first, and the live
	// ones; cancel ends the subscription and closes live.
	Subscribe() (past []events.Message, live <-chan events.Message, cancel func())
}

// ContainerBackend is the container and exec side of the engine, in the
// Engine API's terms. Names are container names or (prefixes of) IDs.
// Errors carry errdefs categories; wrap ErrNotModified for dockerd's 304
// (start of a running container, stop of a stopped one).
//
// Streaming methods get their output through callbacks that the handler
// provides: the response header is only sent once the backend asks for
// the streams, so errors found before that (no such container, wrong
// state) still become a plain HTTP error.
type ContainerBackend interface {
	// ContainerCreate is POST /containers/create (201 {Id, Warnings}).
	ContainerCreate(ctx context.Context, req ContainerCreateRequest) (container.CreateResponse, error)
	// ContainerStart starts a created or stopped container.
	ContainerStart(ctx context.Context, name string) error
	// ContainerStop stops it: opts.Signal (default its stop signal), then
	// SIGKILL after opts.Timeout seconds (nil: its stop timeout; -1: wait
	// forever).
	ContainerStop(ctx context.Context, name string, opts StopOptions) error
	// ContainerRestart stops (as ContainerStop) and starts it again.
	ContainerRestart(ctx context.Context, name string, opts StopOptions) error
	// ContainerKill sends signal ("" = SIGKILL; names or numbers).
	ContainerKill(ctx context.Context, name, signal string) error
	// ContainerWait registers a wait for cond and returns at once; the
	// channel yields one response when the condition is met. The wait
	// ends with ctx (the client went away).
	ContainerWait(ctx context.Context, name string, cond container.WaitCondition) (<-chan container.WaitResponse, error)
	// ContainerRemove is DELETE /containers/{name}.
	ContainerRemove(ctx context.Context, name string, opts RemoveOptions) error
	// ContainerList is GET /containers/json. Filter keys were validated.
	ContainerList(ctx context.Context, opts ListOptions) ([]container.Summary, error)
	// ContainerInspect is GET /containers/{name}/json (sizes when size).
	ContainerInspect(ctx context.Context, name string, size bool) (container.InspectResponse, error)
	// ContainerLogs writes the container's log records to the streams
	// that opts.Streams returns (called once, with the container's TTY
	// setting), formatting timestamps when opts.Timestamps. With Follow it
	// returns when the container stops or ctx ends.
	ContainerLogs(ctx context.Context, name string, opts LogsOptions) error
	// ContainerAttach connects the streams opts.Streams returns (called
	// once the container is known to exist) to the container's stdio
	// until it exits, the client detaches or ctx ends.
	ContainerAttach(ctx context.Context, name string, opts AttachOptions) error
	// ContainerResize sets the container's TTY size.
	ContainerResize(ctx context.Context, name string, height, width uint) error
	// ContainerTop is GET /containers/{name}/top (psArgs default "-ef").
	ContainerTop(ctx context.Context, name, psArgs string) (container.TopResponse, error)
	// ContainerStats sends stats samples: one (after a first sample
	// interval unless opts.OneShot) or, with opts.Stream, one per second
	// until ctx ends or the container stops.
	ContainerStats(ctx context.Context, name string, opts StatsOptions) error
	// ContainerRename gives the container newName.
	ContainerRename(ctx context.Context, name, newName string) error
	// ContainerPause freezes the container's processes.
	ContainerPause(ctx context.Context, name string) error
	// ContainerUnpause thaws them.
	ContainerUnpause(ctx context.Context, name string) error
	// ContainerUpdate changes resources and the restart policy.
	ContainerUpdate(ctx context.Context, name string, cfg container.UpdateConfig) (container.UpdateResponse, error)
	// ContainerPrune removes stopped containers (filters until, label).
	ContainerPrune(ctx context.Context, f filters.Args) (container.PruneReport, error)
	// ContainerExport writes the container's filesystem as a tar to w.
	ContainerExport(ctx context.Context, name string, w io.Writer) error
	// ContainerChanges lists the changes of its writable layer.
	ContainerChanges(ctx context.Context, name string) ([]container.FilesystemChange, error)
	// ContainerStatPath stats path in the container (HEAD archive).
	ContainerStatPath(ctx context.Context, name, path string) (container.PathStat, error)
	// ContainerArchivePath returns a tar of path and its stat (GET archive).
	ContainerArchivePath(ctx context.Context, name, path string) (io.ReadCloser, container.PathStat, error)
	// ContainerExtractToDir extracts the tar content into the directory
	// path of the container (PUT archive).
	ContainerExtractToDir(ctx context.Context, name, path string, opts ExtractOptions, content io.Reader) error
	// ContainerCommit makes an image of the container (POST /commit); it
	// returns the image ID.
	ContainerCommit(ctx context.Context, opts CommitOptions) (string, error)

	// ExecCreate is POST /containers/{name}/exec; it returns the exec ID.
	ExecCreate(ctx context.Context, name string, cfg container.ExecCreateRequest) (string, error)
	// ExecStart runs the exec; with Detach the streams are nil and it
	// returns once the process started, else when it exited.
	ExecStart(ctx context.Context, execID string, opts ExecStartOptions) error
	// ExecResize sets the exec's TTY size.
	ExecResize(ctx context.Context, execID string, height, width uint) error
	// ExecInspect is GET /exec/{id}/json.
	ExecInspect(ctx context.Context, execID string) (container.ExecInspectResponse, error)
}

// ContainerCreateRequest is a parsed POST /containers/create.
type ContainerCreateRequest struct {
	// Name is "" for a generated name.
	Name string
	// Platform is nil when the request named none.
	Platform *ocispec.Platform
	// Config, HostConfig and NetworkingConfig are the body's.
	Config           *container.Config
	HostConfig       *container.HostConfig
	NetworkingConfig *network.NetworkingConfig
}

// StopOptions are the parameters of stop and restart.
type StopOptions struct {
	// Signal is "" for the container's stop signal.
	Signal string
	// Timeout is seconds before SIGKILL; nil for the container's.
	Timeout *int
}

// RemoveOptions are the parameters of DELETE /containers/{name}.
type RemoveOptions struct {
	RemoveVolumes bool
	RemoveLinks   bool
	Force         bool
}

// ListOptions are the parameters of GET /containers/json.
type ListOptions struct {
	All bool
	// Limit is the number of most recent containers (0: no limit).
	Limit   int
	Size    bool
	Filters filters.Args
}

// LogsOptions are the parameters of GET /containers/{name}/logs.
type LogsOptions struct {
	ShowStdout, ShowStderr bool
	// Since and Until bound the records' times (zero: unbounded).
	Since, Until time.Time
	Timestamps   bool
	Follow       bool
	// Tail is how many last lines to send; -1 for all.
	Tail    int
	Details bool
	// Streams starts the response and returns where stdout and stderr
	// records go (multiplexed unless tty).
	Streams func(tty bool) (stdout, stderr io.Writer)
}

// AttachOptions are the parameters of attach (and its websocket form).
type AttachOptions struct {
	Stream, Logs                   bool
	UseStdin, UseStdout, UseStderr bool
	// DetachKeys overrides the detach sequence ("ctrl-p,ctrl-q").
	DetachKeys string
	// Streams takes the connection over and returns the client's stdin
	// (nil unless UseStdin) and where stdout and stderr go (multiplexed
	// unless tty). The backend must call it exactly once, before any I/O.
	Streams func(tty bool) (stdin io.ReadCloser, stdout, stderr io.Writer, err error)
}

// StatsOptions are the parameters of GET /containers/{name}/stats.
type StatsOptions struct {
	Stream  bool
	OneShot bool
	// Send writes one sample to the client.
	Send func(*container.StatsResponse) error
}

// ExtractOptions are the parameters of PUT /containers/{name}/archive.
type ExtractOptions struct {
	NoOverwriteDirNonDir bool
	CopyUIDGID           bool
}

// CommitOptions are the parameters of POST /commit.
type CommitOptions struct {
	Container string
	// Reference is "repo[:tag]" or "" for an untagged image.
	Reference string
	Comment   string
	Author    string
	Pause     bool
	Changes   []string
	// Config overrides the container's config (may be nil).
	Config *container.Config
}

// ExecStartOptions are the parameters of POST /exec/{id}/start.
type ExecStartOptions struct {
	Detach bool
	Tty    bool
	// ConsoleSize is [height, width] when given.
	ConsoleSize *[2]uint
	// Stdin, Stdout and Stderr are nil when detached; Stdout and Stderr
	// are frame writers of one connection unless Tty.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}
