package cli

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func (c *Cli) newCpCmd() *cobra.Command {
	var archive, follow bool
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			srcCtr, srcPath := splitCpArg(args[0])
			dstCtr, dstPath := splitCpArg(args[1])
			switch {
			case srcCtr != "" && dstCtr != "":
				return errors.New("copying between containers is not supported")
			case srcCtr != "":
				if srcPath == "" {
					return errors.New("source can not be empty")
				}
				return c.copyFromContainer(srcCtr, srcPath, dstPath, follow)
			case dstCtr != "":
				if dstPath == "" {
					return errors.New("destination can not be empty")
				}
				return c.copyToContainer(srcPath, dstCtr, dstPath, archive, follow)
			}
			return errors.New("must specify at least one container source")
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	cmd.Flags().BoolVarP(&archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	// berth prints no copy progress, so -q has nothing to silence; scripts pass it.
	cmd.Flags().BoolP("quiet", "q", false, "Suppress progress output during copy")
	return cmd
}

// splitCpArg splits "container:path"; local paths (absolute or starting
// with a dot) never name a container, as in docker cp.
func splitCpArg(arg string) (ctr, p string) {
	if filepath.IsAbs(arg) || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	ctr, p, ok := strings.Cut(arg, ":")
	if !ok {
		return "", arg
	}
	return ctr, p
}

func (c *Cli) copyFromContainer(ctr, src, dst string, follow bool) error {
	api, err := c.Client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	if follow {
		st, err := api.ContainerStatPath(ctx, ctr, client.ContainerStatPathOptions{Path: src})
		if err != nil {
			return noSuchPath(err, ctr, src)
		}
		if st.Stat.Mode&os.ModeSymlink != 0 && st.Stat.LinkTarget != "" {
			src = st.Stat.LinkTarget
		}
	}
	res, err := api.CopyFromContainer(ctx, ctr, client.CopyFromContainerOptions{SourcePath: src})
	if err != nil {
		return noSuchPath(err, ctr, src)
	}
	defer res.Content.Close()
	if dst == "-" {
		_, err := io.Copy(c.Out, res.Content)
		return err
	}
	srcIsDir := res.Stat.Mode.IsDir()
	base := res.Stat.Name
	// Where the archive's top entry lands and under which name.
	into, name := filepath.Dir(dst), filepath.Base(dst)
	st, statErr := os.Stat(dst)
	switch {
	case statErr == nil && st.IsDir():
		into, name = dst, base
		if srcIsDir && (strings.HasSuffix(src, "/.") || src == ".") {
			into, name = filepath.Dir(dst), filepath.Base(dst)
		}
	case statErr == nil && srcIsDir:
		return fmt.Errorf("cannot copy a directory to a file: %s", dst)
	case statErr != nil && !errors.Is(statErr, fs.ErrNotExist):
		return statErr
	case statErr != nil && strings.HasSuffix(dst, string(filepath.Separator)) && !srcIsDir:
		return fmt.Errorf("destination directory %q must exist", dst)
	}
	if _, err := os.Stat(into); err != nil {
		return fmt.Errorf("destination directory %q does not exist: %w", into, err)
	}
	if srcIsDir && (strings.HasSuffix(src, "/.") || src == ".") {
		// The archive holds the directory's contents: they go into name.
		if err := os.MkdirAll(filepath.Join(into, name), res.Stat.Mode.Perm()|0o700); err != nil {
			return err
		}
		base = ""
	}
	return extractRebased(res.Content, into, base, name)
}

// extractRebased writes the tar under dir, renaming its top entry from
// "from" to "to" (from "" puts every entry under to); no entry may land
// outside dir.
func extractRebased(r io.Reader, dir, from, to string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading the copied archive: %w", err)
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if from == "" {
			name = path.Join(to, name)
		} else if name == from {
			name = to
		} else if strings.HasPrefix(name, from+"/") {
			name = to + name[len(from):]
		}
		target, err := securejoin.SecureJoin(dir, name)
		if err != nil {
			return err
		}
		mode := os.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return err
			}
			os.Chmod(target, mode)
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(target), 0o755)
			f, err := os.OpenFile(target, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			f.Close()
			if err != nil {
				return fmt.Errorf("writing %s: %w", target, err)
			}
			os.Chmod(target, mode)
		case tar.TypeSymlink:
			os.Remove(target)
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			old, err := securejoin.SecureJoin(dir, rebase(hdr.Linkname, from, to))
			if err != nil {
				return err
			}
			os.Remove(target)
			if err := os.Link(old, target); err != nil {
				return err
			}
		default:
			continue
		}
		if os.Geteuid() == 0 {
			os.Lchown(target, hdr.Uid, hdr.Gid)
		}
		if hdr.Typeflag != tar.TypeSymlink {
			os.Chtimes(target, hdr.ModTime, hdr.ModTime)
		}
	}
}

func rebase(name, from, to string) string {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if from == "" {
		return path.Join(to, name)
	}
	if name == from {
		return to
	}
	if strings.HasPrefix(name, from+"/") {
		return to + name[len(from):]
	}
	return name
}

func (c *Cli) copyToContainer(src, ctr, dst string, archive, follow bool) error {
	api, err := c.Client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	if src == "-" {
		_, err := api.CopyToContainer(ctx, ctr, client.CopyToContainerOptions{DestinationPath: dst, Content: c.In, CopyUIDGID: archive})
		return err
	}
	src = filepath.Clean(src) + map[bool]string{true: "/.", false: ""}[strings.HasSuffix(src, "/.")]
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	srcInfo, err := stat(strings.TrimSuffix(src, "/."))
	if err != nil {
		return err
	}
	contentsOnly := strings.HasSuffix(src, "/.")
	srcRoot := strings.TrimSuffix(src, "/.")

	dstDir, name := path.Dir(dst), path.Base(dst)
	st, err := api.ContainerStatPath(ctx, ctr, client.ContainerStatPathOptions{Path: dst})
	switch {
	case err == nil && st.Stat.Mode.IsDir():
		dstDir, name = dst, filepath.Base(srcRoot)
		if contentsOnly {
			name = ""
		}
	case err == nil && srcInfo.IsDir():
		return fmt.Errorf("cannot copy a directory to a file: %s", dst)
	case err != nil && !isNotFound(err):
		return err
	case err != nil && strings.HasSuffix(dst, "/"):
		return fmt.Errorf("destination directory %q must exist", dst)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(writeTar(pw, srcRoot, name, follow)) }()
	_, err = api.CopyToContainer(ctx, ctr, client.CopyToContainerOptions{DestinationPath: dstDir, Content: pr, CopyUIDGID: archive})
	pr.Close()
	return err
}

// writeTar writes root (a file or a tree) as a tar whose entries start
// with name ("" puts a directory's contents at the top).
func writeTar(w io.Writer, root, name string, follow bool) error {
	tw := tar.NewWriter(w)
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		entry := filepath.ToSlash(filepath.Join(name, rel))
		if entry == "." || entry == "" {
			return nil
		}
		if p == root && follow {
			if fi, err = os.Stat(p); err != nil {
				return err
			}
		}
		return writeTarEntry(tw, p, entry, fi)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// noSuchPath words a missing container or path as Docker's CLI does.
func noSuchPath(err error, ctr, p string) error {
	if isNotFound(err) {
		return fmt.Errorf("Error: No such container:path: %s:%s", ctr, p)
	}
	return err
}

// writeTarEntry adds the file at path, described by fi, to tw as name (a
// symlink as itself, a directory with its slash, no owner names), with
// its content when it is a regular file.
func writeTarEntry(tw *tar.Writer, path, name string, fi os.FileInfo) error {
	link := ""
	if fi.Mode()&os.ModeSymlink != 0 {
		var err error
		if link, err = os.Readlink(path); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name = name
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}
