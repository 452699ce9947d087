package images

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BigSize is the default content size of a generated image: ~200 MB of
// file data across its layers (about half that compressed).
const BigSize = 200 << 20

// Spec describes a generated image. The same Spec always yields the same
// bytes (and digests).
type Spec struct {
	// Seed drives every choice: names, sizes, contents, operations.
	Seed int64 `json:"seed"`
	// Layers is the number of layers (default 20).
	Layers int `json:"layers"`
	// Size is the total file content written across all layers, before
	// compression (default BigSize).
	Size int64 `json:"size"`
	// Compressions are used for the layers in turn (default gzip, zstd,
	// uncompressed).
	Compressions []Compression `json:"compressions"`
	// Archive also writes a docker-archive (uncompressed layers: doubles
	// the disk space).
	Archive bool `json:"archive"`
	// Name and Tag of the image (default "generated", "latest").
	Name string `json:"name"`
	Tag  string `json:"tag"`
}

func (s Spec) withDefaults() Spec {
	if s.Layers <= 0 {
		s.Layers = 20
	}
	if s.Size <= 0 {
		s.Size = BigSize
	}
	if len(s.Compressions) == 0 {
		s.Compressions = []Compression{Gzip, Zstd, Uncompressed}
	}
	if s.Name == "" {
		s.Name = "generated"
	}
	if s.Tag == "" {
		s.Tag = "latest"
	}
	return s
}

// Generate writes the image described by spec into dir (created if
// missing), with its expected Tree. Layers are written streaming, in
// parallel, and never held in memory.
func Generate(dir string, spec Spec) (*Image, error) {
	spec = spec.withDefaults()
	p := newPlanner(spec)
	p.plan()

	layout := filepath.Join(dir, layoutDir)
	if err := os.MkdirAll(layout, 0o755); err != nil {
		return nil, err
	}
	layers := make([]Layer, spec.Layers)
	raws := make([]string, spec.Layers)
	errs := make([]error, spec.Layers)
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	// Biggest layers first, so the workers finish together.
	order := make([]int, spec.Layers)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return p.layerBytes[order[a]] > p.layerBytes[order[b]] })
	for _, i := range order {
		if spec.Archive {
			raws[i] = filepath.Join(dir, fmt.Sprintf(".layer-%d.tar", i))
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			layers[i], errs[i] = writeGeneratedLayer(layout, spec.Compressions[i%len(spec.Compressions)], raws[i], p.layers[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("generated image: layer %d: %w", i, err)
		}
	}
	defer func() {
		for _, r := range raws {
			if r != "" {
				os.Remove(r)
			}
		}
	}()

	img := &Image{Name: spec.Name, Tag: spec.Tag, Layers: layers}
	var history []ocispec.History
	for i := range layers {
		t := p.layerTime(i)
		history = append(history, ocispec.History{Created: &t, CreatedBy: fmt.Sprintf("RUN berth-genimage --seed %d --layer %d", spec.Seed, i)})
	}
	img.Config = imageConfig("amd64", "", ocispec.ImageConfig{
		Env:        []string{DefaultPath},
		Cmd:        []string{"/bin/sh"},
		WorkingDir: "/opt",
		Labels:     map[string]string{"org.berth.fixture.seed": strconv.FormatInt(spec.Seed, 10)},
	}, layers, history)
	md, m, err := writeManifest(layout, img.Config, layers)
	if err != nil {
		return nil, err
	}
	md.Platform = nil
	img.Manifest, img.Top, img.Manifests = m, md, []ocispec.Descriptor{md}
	if err := writeLayoutIndex(layout, md, img.Tag); err != nil {
		return nil, err
	}
	if spec.Archive {
		config, err := os.ReadFile(blobPath(layout, m.Config.Digest))
		if err != nil {
			return nil, err
		}
		var al []archiveLayer
		for i, l := range layers {
			al = append(al, archiveLayer{raws[i], l.DiffID})
		}
		if err := writeDockerArchive(filepath.Join(dir, archiveName), config, al, img.Name, img.Tag); err != nil {
			return nil, err
		}
	}
	img.Tree = p.tree()
	img.setPaths(dir)
	return img, img.save()
}

// CachedGenerated returns the cached image for spec, generating it when
// missing.
func CachedGenerated(spec Spec) (*Image, error) {
	spec = spec.withDefaults()
	return cached(cacheKey("generated", spec), func(dir string) (*Image, error) { return Generate(dir, spec) })
}

func writeGeneratedLayer(layout string, comp Compression, rawPath string, entries []*entry) (Layer, error) {
	lw, err := newLayerWriter(layout, comp, rawPath)
	if err != nil {
		return Layer{}, err
	}
	buf := make([]byte, 64<<10)
	for _, e := range entries {
		if err := lw.WriteHeader(e.hdr); err != nil {
			lw.abort()
			return Layer{}, err
		}
		if e.hdr.Typeflag == tar.TypeReg {
			if e.sum, err = writeContent(lw.Writer, e.seed, e.hdr.Size, buf); err != nil {
				lw.abort()
				return Layer{}, err
			}
		}
	}
	return lw.finish()
}

// words make the compressible part of generated contents.
var words = strings.Fields(`the of and to in is was that for on are with as be at by this have from or
one had not but what all were when we there can an your which their said if do will each about how up out
them then she many some so these would other into has more her two like him see time could no make than first`)

// writeContent writes size bytes derived from seed to w and returns their
// sha256. Each 4 KiB block is random (incompressible, 30%) or text
// (compressible), so layers compress about as well as real images.
func writeContent(w io.Writer, seed uint64, size int64, buf []byte) (string, error) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	h := sha256.New()
	for size > 0 {
		n := int(min(int64(len(buf)), size))
		b := buf[:n]
		for off := 0; off < n; off += 4096 {
			blk := b[off:min(off+4096, n)]
			if rng.Uint32N(10) < 3 {
				i := 0
				for ; i+8 <= len(blk); i += 8 {
					binary.LittleEndian.PutUint64(blk[i:], rng.Uint64())
				}
				for ; i < len(blk); i++ {
					blk[i] = byte(rng.Uint32())
				}
				continue
			}
			for pos := 0; pos < len(blk); {
				pos += copy(blk[pos:], words[rng.Uint32N(uint32(len(words)))])
				if pos < len(blk) {
					blk[pos] = ' '
					if rng.Uint32N(12) == 0 {
						blk[pos] = '\n'
					}
					pos++
				}
			}
		}
		h.Write(b)
		if _, err := w.Write(b); err != nil {
			return "", err
		}
		size -= int64(n)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// entry is one tar entry of a generated layer.
type entry struct {
	hdr  *tar.Header
	seed uint64 // contents of a regular file
	sum  string // sha256 of the contents, set when the layer is written
}

// node is a path of the planned filesystem after the layers so far.
type node struct {
	typ        string
	mode       uint32
	uid, gid   int
	content    *entry // regular files: the entry whose bytes the file has
	hardlinked bool
	link       string
	xattrs     map[string][]byte
	mtime      int64
	major      uint32
	minor      uint32
}

// planner decides every layer's entries and tracks the resulting tree.
// Only the plan is in memory; contents are produced when layers are
// written.
type planner struct {
	spec       Spec
	rng        *rand.Rand
	nodes      map[string]*node
	skeleton   map[string]bool // directories never removed
	layers     [][]*entry
	layerBytes []int64
	deleted    []string // paths whited out in earlier layers

	// Per layer.
	layer   int
	cur     map[string]*entry
	links   []*entry
	touched map[string]bool // paths with an entry (or removed) in this layer
	busy    map[string]bool // dirs whose subtree this layer must not touch
	budget  int64
	counter int
	dirs    []string // pickDir's candidates; nil when stale
}

func newPlanner(spec Spec) *planner {
	return &planner{
		spec:     spec,
		rng:      rand.New(rand.NewPCG(uint64(spec.Seed), 0x5eed)),
		nodes:    map[string]*node{},
		skeleton: map[string]bool{},
	}
}

func (p *planner) layerTime(i int) time.Time { return epoch.Add(time.Duration(i+1) * time.Hour) }

func (p *planner) plan() {
	s := p.spec
	for i := 0; i < s.Layers; i++ {
		p.layer, p.cur, p.links, p.touched, p.busy, p.dirs = i, map[string]*entry{}, nil, map[string]bool{}, map[string]bool{}, nil
		share := float64(s.Size) * 0.8 / float64(max(s.Layers-1, 1))
		if i == 0 {
			share = float64(s.Size) * 0.2
			if s.Layers == 1 {
				share = float64(s.Size)
			}
		} else {
			share *= 0.7 + 0.6*p.rng.Float64()
		}
		p.budget = int64(share)
		if i == 0 {
			p.base()
		} else {
			p.change()
		}
		p.layers = append(p.layers, p.finishLayer())
	}
}

// base lays out the skeleton and the special files of layer 0.
func (p *planner) base() {
	for _, d := range []string{"bin", "etc", "home", "opt", "usr", "usr/bin", "usr/lib", "usr/share", "var", "var/lib", "var/log", "specials"} {
		p.mkdir(d, 0o755, 0, 0)
		p.skeleton[d] = true
	}
	p.mkdir("tmp", 0o1777, 0, 0)
	p.skeleton["tmp"] = true
	p.mkdir("home/user", 0o750, 1000, 1000)
	p.mkdir("var/lib/shared", 0o2775, 0, 1000)
	nd := int(max(6, p.spec.Size/(1<<20)))
	for range nd {
		p.mkdir(p.child(p.pickDir()), p.dirMode(), p.owner(), 0)
	}
	// Special files, kept until the end (their dir is in the skeleton).
	p.addFile("specials/setuid-tool", 1234, 0o4755, 0, 0, nil)
	p.addFile("specials/setgid-tool", 2345, 0o2711, 0, 1000, nil)
	capV2 := []byte{0x01, 0, 0, 0x02, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // cap_net_bind_service, effective
	p.addFile("specials/cap-tool", 512, 0o755, 0, 0, map[string][]byte{"security.capability": capV2})
	p.addFile("specials/"+strings.Repeat("long-name-", 12)+"end", 100, 0o644, 0, 0, nil)
	p.addFile("specials/ünïcödé name with spaces", 42, 0o644, 0, 0, nil)
	p.addFile("specials/empty", 0, 0o644, 0, 0, nil)
	p.addNode("specials/fifo", &node{typ: TypeFifo, mode: 0o644}, &tar.Header{Typeflag: tar.TypeFifo})
	p.addNode("specials/null", &node{typ: TypeChar, mode: 0o666, major: 1, minor: 3}, &tar.Header{Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3})
	p.addNode("specials/dangling", &node{typ: TypeSymlink, mode: 0o777, link: "../nowhere/at/all"}, &tar.Header{Typeflag: tar.TypeSymlink})
	p.addNode("specials/abs-link", &node{typ: TypeSymlink, mode: 0o777, link: "/specials/setuid-tool"}, &tar.Header{Typeflag: tar.TypeSymlink})
	p.addNode("specials/dir-link", &node{typ: TypeSymlink, mode: 0o777, link: "../usr/lib"}, &tar.Header{Typeflag: tar.TypeSymlink})
	p.addHardlink("specials/setuid-tool", "specials/setuid-hardlink")
	p.fill()
}

// change plans layer p.layer > 0: structural changes first, then edits
// and deletions of lower files, then new files up to the budget.
func (p *planner) change() {
	i := p.layer
	if i%3 == 1 { // remove a whole directory
		if d := p.pickStructDir(); d != "" {
			p.whiteout(d)
		}
	}
	if i%4 == 2 { // make a directory opaque and refill it
		if d := p.pickStructDir(); d != "" {
			n := p.nodes[d]
			p.removeBelow(d)
			p.emit(d, &tar.Header{Typeflag: tar.TypeDir, Mode: int64(n.mode), Uid: n.uid, Gid: n.gid})
			p.touched[d] = true
			p.markBusy(d)
			p.emitRaw(d+"/.wh..wh..opq", &tar.Header{Typeflag: tar.TypeReg, Mode: 0o644})
			for range 1 + p.rng.IntN(3) {
				p.addFile(p.child(d), p.fileSize(), p.fileMode(), p.owner(), 0, nil)
			}
		}
	}
	if i%5 == 3 { // change types in place, without whiteouts
		if f := p.pickFile(); f != "" { // file -> symlink
			p.addNode(f, &node{typ: TypeSymlink, mode: 0o777, link: "../" + path.Base(f) + ".moved"}, &tar.Header{Typeflag: tar.TypeSymlink})
		}
		if f := p.pickFile(); f != "" { // file -> directory with a file
			p.mkdir(f, 0o755, 0, 0)
			p.markBusy(f)
			p.addFile(p.child(f), p.fileSize(), 0o644, 0, 0, nil)
		}
		if d := p.pickStructDir(); d != "" { // directory -> file
			p.removeBelow(d)
			p.markBusy(d)
			p.addFile(d, p.fileSize(), 0o644, 0, 0, nil)
		}
	}
	if i%4 == 3 && len(p.deleted) > 0 { // bring back a path deleted below
		d := p.deleted[p.rng.IntN(len(p.deleted))]
		if parent := path.Dir(d); p.isDir(parent) && p.nodes[d] == nil && p.free(d) {
			p.addFile(d, p.fileSize(), 0o644, 0, 0, nil)
		}
	}
	files := p.lowerFiles()
	nDel := max(1, len(files)/50)
	nMod := max(1, len(files)/25)
	for range nDel {
		if f := p.pickFrom(files); f != "" {
			p.whiteout(f)
		}
	}
	for range nMod {
		f := p.pickFrom(files)
		if f == "" {
			continue
		}
		n := p.nodes[f]
		if n.typ != TypeFile {
			continue
		}
		switch p.rng.IntN(4) {
		case 0: // metadata only: same bytes, new mode and owner
			e := p.addFile(f, n.content.hdr.Size, p.fileMode(), p.owner(), 0, n.xattrs)
			e.seed = n.content.seed
		default: // new contents
			p.addFile(f, p.fileSize(), n.mode, n.uid, n.gid, n.xattrs)
		}
	}
	p.fill()
}

// fill adds new files (and some directories, symlinks, a hardlink) until
// the layer's budget is spent.
func (p *planner) fill() {
	var added []string
	for p.budget > 0 || len(added) < 3 {
		d := p.pickDir()
		if p.rng.IntN(10) == 0 {
			nd := p.child(d)
			p.mkdir(nd, p.dirMode(), p.owner(), 0)
			d = nd
		}
		var x map[string][]byte
		if p.rng.IntN(20) == 0 {
			x = map[string][]byte{"user.berth.layer": []byte(strconv.Itoa(p.layer)), "user.berth.note": []byte("xattr on a generated file")}
		}
		f := p.child(d)
		p.addFile(f, p.fileSize(), p.fileMode(), p.owner(), 0, x)
		added = append(added, f)
		if p.rng.IntN(25) == 0 { // relative symlink to a sibling
			p.addNode(p.child(d), &node{typ: TypeSymlink, mode: 0o777, link: path.Base(f)}, &tar.Header{Typeflag: tar.TypeSymlink})
		}
		if p.rng.IntN(60) == 0 { // absolute symlink
			p.addNode(p.child(p.pickDir()), &node{typ: TypeSymlink, mode: 0o777, link: "/" + f}, &tar.Header{Typeflag: tar.TypeSymlink})
		}
	}
	for range 1 + len(added)/100 {
		t := added[p.rng.IntN(len(added))]
		if n := p.nodes[t]; n != nil && n.typ == TypeFile && p.cur[t] != nil {
			p.addHardlink(t, p.child(p.pickDir()))
		}
	}
}

func (p *planner) fileSize() int64 {
	large := min(int64(8<<20), max(p.spec.Size/40, 64<<10))
	var n int64
	switch r := p.rng.IntN(100); {
	case r < 5:
		n = 0
	case r < 90:
		n = 1 + p.rng.Int64N(8<<10)
	case r < 98:
		n = 8<<10 + p.rng.Int64N(120<<10)
	default:
		n = 128<<10 + p.rng.Int64N(large)
	}
	return n
}

func (p *planner) fileMode() uint32 {
	return []uint32{0o644, 0o644, 0o644, 0o644, 0o755, 0o755, 0o600, 0o444, 0o640}[p.rng.IntN(9)]
}

func (p *planner) dirMode() uint32 { return []uint32{0o755, 0o755, 0o755, 0o750, 0o700}[p.rng.IntN(5)] }

func (p *planner) owner() int { return []int{0, 0, 0, 0, 1000, 65534}[p.rng.IntN(6)] }

// child returns a new, unique path inside dir.
func (p *planner) child(dir string) string {
	p.counter++
	w := words[p.rng.IntN(len(words))]
	ext := []string{"", ".so", ".txt", ".conf", ".py", ".bin", ".json"}[p.rng.IntN(7)]
	return path.Join(dir, fmt.Sprintf("%s-%d%s", w, p.counter, ext))
}

func (p *planner) isDir(d string) bool {
	n := p.nodes[d]
	return d == "." || (n != nil && n.typ == TypeDir)
}

// free reports whether this layer may still add or change path: not
// touched yet and not below a directory this layer removed or replaced.
func (p *planner) free(pth string) bool {
	if p.touched[pth] {
		return false
	}
	for d := path.Dir(pth); d != "."; d = path.Dir(d) {
		if p.busy[d] {
			return false
		}
	}
	return true
}

func (p *planner) sortedPaths(keep func(string, *node) bool) []string {
	var out []string
	for k, n := range p.nodes {
		if keep(k, n) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// pickDir returns an existing directory new entries may go into.
func (p *planner) pickDir() string {
	if p.dirs == nil {
		p.dirs = p.sortedPaths(func(k string, n *node) bool {
			return n.typ == TypeDir && !p.busy[k] && p.free(k+"/x") && k != "specials"
		})
	}
	if len(p.dirs) == 0 {
		return "."
	}
	return p.dirs[p.rng.IntN(len(p.dirs))]
}

// pickStructDir returns a non-skeleton directory with children that this
// layer has not touched at or below (or "").
func (p *planner) pickStructDir() string {
	dirs := p.sortedPaths(func(k string, n *node) bool {
		if n.typ != TypeDir || p.skeleton[k] || !p.free(k) {
			return false
		}
		for t := range p.touched {
			if strings.HasPrefix(t, k+"/") {
				return false
			}
		}
		return p.hasChildren(k)
	})
	if len(dirs) == 0 {
		return ""
	}
	return dirs[p.rng.IntN(len(dirs))]
}

func (p *planner) hasChildren(d string) bool {
	for k := range p.nodes {
		if strings.HasPrefix(k, d+"/") {
			return true
		}
	}
	return false
}

// lowerFiles lists regular files and symlinks from lower layers that this
// layer may change.
func (p *planner) lowerFiles() []string {
	return p.sortedPaths(func(k string, n *node) bool {
		return (n.typ == TypeFile || n.typ == TypeSymlink) && !strings.HasPrefix(k, "specials/") && p.free(k)
	})
}

func (p *planner) pickFile() string {
	return p.pickFrom(p.lowerFiles())
}

// pickFrom returns a random path of list still free in this layer.
func (p *planner) pickFrom(list []string) string {
	for range 8 {
		if len(list) == 0 {
			return ""
		}
		f := list[p.rng.IntN(len(list))]
		if p.nodes[f] != nil && p.free(f) {
			return f
		}
	}
	return ""
}

func (p *planner) mtime() int64 {
	return p.layerTime(p.layer).Unix() + p.rng.Int64N(3600)
}

func (p *planner) mkdir(d string, mode uint32, uid, gid int) {
	if uid != 0 && gid == 0 {
		gid = uid
	}
	p.addNode(d, &node{typ: TypeDir, mode: mode, uid: uid, gid: gid}, &tar.Header{Typeflag: tar.TypeDir})
}

// addFile plans a regular file with new contents (a new seed).
func (p *planner) addFile(f string, size int64, mode uint32, uid, gid int, xattrs map[string][]byte) *entry {
	if uid != 0 && gid == 0 {
		gid = uid
	}
	n := &node{typ: TypeFile, mode: mode, uid: uid, gid: gid, xattrs: xattrs}
	e := p.addNode(f, n, &tar.Header{Typeflag: tar.TypeReg, Size: size})
	e.seed = p.rng.Uint64()
	n.content = e
	p.budget -= size
	return e
}

// addNode records n at pth (replacing whatever was there, subtree
// included) and plans its tar entry, filling hdr from n.
func (p *planner) addNode(pth string, n *node, hdr *tar.Header) *entry {
	if old := p.nodes[pth]; old != nil && old.typ == TypeDir && n.typ != TypeDir {
		p.removeBelow(pth)
	}
	if n.typ != TypeDir {
		n.mtime = p.mtime()
		hdr.ModTime = time.Unix(n.mtime, 0)
	}
	hdr.Mode, hdr.Uid, hdr.Gid, hdr.Linkname = int64(n.mode), n.uid, n.gid, n.link
	if len(n.xattrs) > 0 {
		hdr.PAXRecords = map[string]string{}
		for k, v := range n.xattrs {
			hdr.PAXRecords["SCHILY.xattr."+k] = string(v)
		}
	}
	if n.typ == TypeDir && p.dirs != nil && p.nodes[pth] == nil {
		p.dirs = append(p.dirs, pth) // new dirs are free: no rebuild
	} else if n.typ == TypeDir || (p.nodes[pth] != nil && p.nodes[pth].typ == TypeDir) {
		p.dirs = nil
	}
	p.nodes[pth] = n
	p.touched[pth] = true
	return p.emit(pth, hdr)
}

// addHardlink plans name as a hardlink to target, a file of this layer.
func (p *planner) addHardlink(target, name string) {
	t := p.nodes[target]
	n := *t
	n.hardlinked, t.hardlinked = true, true
	p.nodes[name] = &n
	p.touched[name] = true
	e := &entry{hdr: &tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target, Mode: int64(t.mode), Uid: t.uid, Gid: t.gid, ModTime: time.Unix(t.mtime, 0)}}
	p.links = append(p.links, e)
}

// whiteout deletes pth (and its subtree) in this layer.
func (p *planner) whiteout(pth string) {
	p.removeBelow(pth)
	delete(p.nodes, pth)
	p.touched[pth] = true
	p.markBusy(pth)
	p.deleted = append(p.deleted, pth)
	p.emitRaw(path.Join(path.Dir(pth), ".wh."+path.Base(pth)), &tar.Header{Typeflag: tar.TypeReg, Mode: 0o644})
}

// markBusy keeps the rest of this layer out of d's subtree.
func (p *planner) markBusy(d string) {
	p.busy[d] = true
	p.dirs = nil
}

func (p *planner) removeBelow(d string) {
	p.dirs = nil
	for k := range p.nodes {
		if strings.HasPrefix(k, d+"/") {
			delete(p.nodes, k)
		}
	}
}

func (p *planner) emit(pth string, hdr *tar.Header) *entry {
	return p.emitRaw(pth, hdr)
}

func (p *planner) emitRaw(pth string, hdr *tar.Header) *entry {
	hdr.Name = pth
	if hdr.ModTime.IsZero() {
		hdr.ModTime = p.layerTime(p.layer)
	}
	e := &entry{hdr: hdr}
	p.cur[pth] = e
	return e
}

// finishLayer adds the parent directories of every entry, orders the
// entries (parents first, hardlinks last) and names directories "d/".
func (p *planner) finishLayer() []*entry {
	var paths []string
	for pth := range p.cur {
		paths = append(paths, pth)
	}
	for _, l := range p.links {
		paths = append(paths, l.hdr.Name)
	}
	for _, pth := range paths {
		for d := path.Dir(pth); d != "."; d = path.Dir(d) {
			if p.cur[d] != nil {
				continue
			}
			n := p.nodes[d]
			p.cur[d] = &entry{hdr: &tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: int64(n.mode), Uid: n.uid, Gid: n.gid, ModTime: p.layerTime(p.layer)}}
		}
	}
	names := make([]string, 0, len(p.cur))
	for k := range p.cur {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []*entry
	var size int64
	for _, k := range names {
		e := p.cur[k]
		if e.hdr.Typeflag == tar.TypeDir {
			e.hdr.Name += "/"
		}
		size += e.hdr.Size
		out = append(out, e)
	}
	p.layerBytes = append(p.layerBytes, size)
	return append(out, p.links...)
}

// tree returns the expected final tree; call it after the layers were
// written (it reads the content hashes).
func (p *planner) tree() *Tree {
	groups := map[*entry][]string{}
	for k, n := range p.nodes {
		if n.hardlinked {
			groups[n.content] = append(groups[n.content], k)
		}
	}
	canon := map[string]string{}
	for _, g := range groups {
		if len(g) < 2 {
			continue
		}
		sort.Strings(g)
		for _, k := range g[1:] {
			canon[k] = g[0]
		}
	}
	t := &Tree{}
	for _, k := range p.sortedPaths(func(string, *node) bool { return true }) {
		n := p.nodes[k]
		te := TreeEntry{Path: k, Type: n.typ, Mode: n.mode, UID: n.uid, GID: n.gid, Link: n.link,
			Hardlink: canon[k], Xattrs: n.xattrs, ModTime: n.mtime, DevMajor: n.major, DevMinor: n.minor}
		if n.typ == TypeFile {
			te.Size, te.SHA256 = n.content.hdr.Size, n.content.sum
		}
		t.Entries = append(t.Entries, te)
	}
	return t
}
