package service_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/container/files"
	"github.com/berth-dev/berth/errdefs"
	"github.com/berth-dev/berth/image/archive"
	"github.com/berth-dev/berth/image/service"
	"github.com/berth-dev/berth/internal/testutil"
	"github.com/berth-dev/berth/internal/testutil/dockerd"
	"github.com/berth-dev/berth/internal/testutil/images"
)

func loadBusybox(t *testing.T, s *service.Service) string {
	t.Helper()
	f, err := os.Open(images.Busybox(t).Archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := s.Load(context.Background(), f); err != nil {
		t.Fatal(err)
	}
	img, err := s.Get(context.Background(), "busybox:latest")
	if err != nil {
		t.Fatal(err)
	}
	return img.ID.String()
}

func TestCommit(t *testing.T) {
	testutil.LeakCheck(t)
	s, root, _ := open(t)
	ctx := context.Background()
	parent := loadBusybox(t, s)

	dir := mountRootfs(t, s, "busybox:latest", "ctr-a")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "etc/newfile"), []byte("hello\n"), 0o640))
	must(os.Remove(filepath.Join(dir, "bin/ls")))
	must(os.WriteFile(filepath.Join(dir, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644))
	must(os.MkdirAll(filepath.Join(dir, "data/sub"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "data/sub/f"), []byte("f"), 0o600))
	must(os.Chown(filepath.Join(dir, "data/sub/f"), 1234, 5678))
	must(os.RemoveAll(filepath.Join(dir, "home")))
	must(os.Mkdir(filepath.Join(dir, "home"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "home/z"), nil, 0o644))

	cfg := &container.Config{Cmd: []string{"cat", "/etc/newfile"}, Env: []string{"A=1"}, Labels: map[string]string{"l": "v"}}
	img, err := s.Commit(ctx, service.CommitOptions{
		ContainerKey: "ctr-a", Parent: parent, Config: cfg,
		ContainerConfig: &container.Config{Cmd: []string{"sh", "-c", "echo hi"}},
		Comment:         "a comment", Author: "Jane <jane@example.com>", Ref: "committed:v1",
	})
	if err != nil {
		t.Fatal(err)
	}
	insp, err := s.Inspect(ctx, "committed:v1")
	if err != nil {
		t.Fatal(err)
	}
	pinsp, _ := s.Inspect(ctx, parent)
	if insp.ID != img.ID.String() || !slices.Equal(insp.RepoTags, []string{"committed:v1"}) ||
		insp.Author != "Jane <jane@example.com>" || insp.Comment != "a comment" ||
		len(insp.RootFS.Layers) != len(pinsp.RootFS.Layers)+1 || !slices.Equal(insp.RootFS.Layers[:len(pinsp.RootFS.Layers)], pinsp.RootFS.Layers) ||
		!slices.Equal(insp.Config.Cmd, cfg.Cmd) || !slices.Equal(insp.Config.Env, cfg.Env) || insp.Config.Labels["l"] != "v" ||
		insp.Architecture != pinsp.Architecture || insp.Os != pinsp.Os {
		t.Errorf("inspect of the commit: %+v\nparent: %+v", insp, pinsp)
	}
	hist, err := s.History(ctx, "committed:v1")
	if err != nil {
		t.Fatal(err)
	}
	phist, _ := s.History(ctx, parent)
	if len(hist) != len(phist)+1 || hist[0].CreatedBy != "sh -c echo hi" || hist[0].Comment != "a comment" || hist[0].Size <= 0 ||
		hist[0].ID != img.ID.String() || hist[1].CreatedBy != phist[0].CreatedBy {
		t.Errorf("history: %+v", hist)
	}

	// A container of the new image sees the changes, and has none itself.
	dir2 := mountRootfs(t, s, "committed:v1", "ctr-b")
	if b, err := os.ReadFile(filepath.Join(dir2, "etc/newfile")); string(b) != "hello\n" {
		t.Errorf("etc/newfile: %q, %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir2, "etc/passwd")); string(b) != "root:x:0:0:root:/root:/bin/sh\n" {
		t.Errorf("etc/passwd: %q", b)
	}
	for _, gone := range []string{"bin/ls", "home/user"} {
		if _, err := os.Lstat(filepath.Join(dir2, gone)); !os.IsNotExist(err) {
			t.Errorf("%s is still there: %v", gone, err)
		}
	}
	var st = mustStat(t, filepath.Join(dir2, "data/sub/f"))
	if st.Mode().Perm() != 0o600 || ownerOf(st) != [2]int{1234, 5678} {
		t.Errorf("data/sub/f: %v %v", st.Mode(), ownerOf(st))
	}
	if _, err := os.Stat(filepath.Join(dir2, "home/z")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir2, "bin/sh")); err != nil {
		t.Errorf("the parent's files: %v", err)
	}
	mounts, err := s.ContainerMounts(ctx, "ctr-b")
	if err != nil {
		t.Fatal(err)
	}
	if ch, err := files.MountChanges(mounts); err != nil || len(ch) != 0 {
		t.Errorf("changes of a fresh container of the commit: %v, %v", ch, err)
	}

	// Nothing changed: no new layer, an empty_layer history entry.
	img2, err := s.Commit(ctx, service.CommitOptions{ContainerKey: "ctr-b", Parent: img.ID.String(), Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	insp2, _ := s.Inspect(ctx, img2.ID.String())
	hist2, _ := s.History(ctx, img2.ID.String())
	if !slices.Equal(insp2.RootFS.Layers, insp.RootFS.Layers) || len(hist2) != len(hist)+1 || hist2[0].Size != 0 ||
		hist2[0].CreatedBy != "cat /etc/newfile" || len(insp2.RepoTags) != 0 {
		t.Errorf("empty commit: %+v %+v", insp2, hist2)
	}

	// Bad input.
	if _, err := s.Commit(ctx, service.CommitOptions{ContainerKey: "nope", Parent: parent, Config: cfg}); !errdefs.IsNotFound(err) {
		t.Errorf("unknown container snapshot: %v", err)
	}
	if _, err := s.Commit(ctx, service.CommitOptions{ContainerKey: "ctr-a", Parent: img.ID.String(), Config: cfg}); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("wrong parent: %v", err)
	}
	if _, err := s.Commit(ctx, service.CommitOptions{ContainerKey: "ctr-a", Parent: parent, Config: cfg, Ref: "Bad:Ref"}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad ref: %v", err)
	}
	if _, err := s.Commit(ctx, service.CommitOptions{ContainerKey: "ctr-a", Parent: parent}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("no config: %v", err)
	}

	unmountRootfs(t, s, dir2, "ctr-b")
	unmountRootfs(t, s, dir, "ctr-a")
	for _, ref := range []string{img2.ID.String(), "committed:v1", "busybox:latest"} {
		if _, err := s.Remove(ctx, ref, false); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	assertEmpty(t, root) // no blob or snapshot of the commits is left
}

// TestCommitRunsInDockerd saves a committed image and runs it in a real
// dockerd: the layer, config and manifest are what Docker reads.
func TestCommitRunsInDockerd(t *testing.T) {
	testutil.LeakCheck(t)
	s, _, _ := open(t)
	ctx := context.Background()
	parent := loadBusybox(t, s)
	dir := mountRootfs(t, s, "busybox:latest", "ctr-d")
	if err := os.WriteFile(filepath.Join(dir, "greeting"), []byte("hi from a commit"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "bin/ls")); err != nil {
		t.Fatal(err)
	}
	_, err := s.Commit(ctx, service.CommitOptions{ContainerKey: "ctr-d", Parent: parent,
		Config: &container.Config{Cmd: []string{"cat", "/greeting"}, Env: []string{images.DefaultPath}}, Ref: "berthcommit:1"})
	if err != nil {
		t.Fatal(err)
	}
	unmountRootfs(t, s, dir, "ctr-d")
	tarPath := filepath.Join(t.TempDir(), "img.tar")
	f, err := os.Create(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, f, []string{"berthcommit:1"}, archive.DockerArchive); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d := dockerdStart(t)
	d.Must(t, "load", "-i", tarPath)
	if out := d.Must(t, "run", "--rm", "--network", "none", "berthcommit:1"); out != "hi from a commit" {
		t.Errorf("docker run of the commit: %q", out)
	}
	if out := d.Must(t, "run", "--rm", "--network", "none", "berthcommit:1", "sh", "-c", "test -e /bin/ls && echo there || echo gone"); out != "gone\n" {
		t.Errorf("bin/ls in dockerd: %q", out)
	}
	if out := d.Must(t, "history", "--format", "{{.CreatedBy}}|{{.Comment}}", "berthcommit:1"); !strings.HasPrefix(out, "cat /greeting|\n") {
		t.Errorf("docker history: %q", out)
	}
}

func mustStat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ownerOf(fi os.FileInfo) [2]int {
	st := fi.Sys().(*syscall.Stat_t)
	return [2]int{int(st.Uid), int(st.Gid)}
}

func dockerdStart(t *testing.T) *dockerd.Daemon {
	return dockerd.Start(t, dockerd.Options{})
}
