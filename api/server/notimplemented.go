package server

import (
	"context"
	"fmt"
	"io"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/api/filters"
	"github.com/berth-dev/berth/errdefs"
)

// NotImplemented is the ContainerBackend of a berthd without a container
// engine: every call fails with errdefs.ErrNotImplemented (501), naming
// the operation. It is a boundary, not a fake: nothing pretends to run.
type NotImplemented struct{}

var _ ContainerBackend = NotImplemented{}

func notImplemented(op string) error {
	return fmt.Errorf("%s: containers are not implemented in this berthd yet: %w", op, errdefs.ErrNotImplemented)
}

func (NotImplemented) ContainerCreate(context.Context, ContainerCreateRequest) (container.CreateResponse, error) {
	return container.CreateResponse{}, notImplemented("container create")
}
func (NotImplemented) ContainerStart(context.Context, string) error {
	return notImplemented("container start")
}
func (NotImplemented) ContainerStop(context.Context, string, StopOptions) error {
	return notImplemented("container stop")
}
func (NotImplemented) ContainerRestart(context.Context, string, StopOptions) error {
	return notImplemented("container restart")
}
func (NotImplemented) ContainerKill(context.Context, string, string) error {
	return notImplemented("container kill")
}
func (NotImplemented) ContainerWait(context.Context, string, container.WaitCondition) (<-chan container.WaitResponse, error) {
	return nil, notImplemented("container wait")
}
func (NotImplemented) ContainerRemove(context.Context, string, RemoveOptions) error {
	return notImplemented("container remove")
}
func (NotImplemented) ContainerList(context.Context, ListOptions) ([]container.Summary, error) {
	return nil, notImplemented("container list")
}
func (NotImplemented) ContainerInspect(context.Context, string, bool) (container.InspectResponse, error) {
	return container.InspectResponse{}, notImplemented("container inspect")
}
func (NotImplemented) ContainerLogs(context.Context, string, LogsOptions) error {
	return notImplemented("container logs")
}
func (NotImplemented) ContainerAttach(context.Context, string, AttachOptions) error {
	return notImplemented("container attach")
}
func (NotImplemented) ContainerResize(context.Context, string, uint, uint) error {
	return notImplemented("container resize")
}
func (NotImplemented) ContainerTop(context.Context, string, string) (container.TopResponse, error) {
	return container.TopResponse{}, notImplemented("container top")
}
func (NotImplemented) ContainerStats(context.Context, string, StatsOptions) error {
	return notImplemented("container stats")
}
func (NotImplemented) ContainerRename(context.Context, string, string) error {
	return notImplemented("container rename")
}
func (NotImplemented) ContainerPause(context.Context, string) error {
	return notImplemented("container pause")
}
func (NotImplemented) ContainerUnpause(context.Context, string) error {
	return notImplemented("container unpause")
}
func (NotImplemented) ContainerUpdate(context.Context, string, container.UpdateConfig) (container.UpdateResponse, error) {
	return container.UpdateResponse{}, notImplemented("container update")
}
func (NotImplemented) ContainerPrune(context.Context, filters.Args) (container.PruneReport, error) {
	return container.PruneReport{}, notImplemented("container prune")
}
func (NotImplemented) ContainerExport(context.Context, string, io.Writer) error {
	return notImplemented("container export")
}
func (NotImplemented) ContainerChanges(context.Context, string) ([]container.FilesystemChange, error) {
	return nil, notImplemented("container changes")
}
func (NotImplemented) ContainerStatPath(context.Context, string, string) (container.PathStat, error) {
	return container.PathStat{}, notImplemented("container archive stat")
}
func (NotImplemented) ContainerArchivePath(context.Context, string, string) (io.ReadCloser, container.PathStat, error) {
	return nil, container.PathStat{}, notImplemented("container archive")
}
func (NotImplemented) ContainerExtractToDir(context.Context, string, string, ExtractOptions, io.Reader) error {
	return notImplemented("container extract")
}
func (NotImplemented) ContainerCommit(context.Context, CommitOptions) (string, error) {
	return "", notImplemented("commit")
}
func (NotImplemented) ExecCreate(context.Context, string, container.ExecCreateRequest) (string, error) {
	return "", notImplemented("exec create")
}
func (NotImplemented) ExecStart(context.Context, string, ExecStartOptions) error {
	return notImplemented("exec start")
}
func (NotImplemented) ExecResize(context.Context, string, uint, uint) error {
	return notImplemented("exec resize")
}
func (NotImplemented) ExecInspect(context.Context, string) (container.ExecInspectResponse, error) {
	return container.ExecInspectResponse{}, notImplemented("exec inspect")
}
