// Package images builds Berth's offline fixture images: a busybox image made
// from Debian's busybox-static, a FROM-scratch image around a static Go
// binary, and large deterministic multi-layer images generated from a seed
// (whiteouts, opaque directories, hardlinks, symlinks, devices, xattrs,
// gzip/zstd/uncompressed layers) together with the tree a correct unpack
// must produce.
//
// Every image is written as an OCI image layout and, when it has a single
// platform, also as a docker-archive tar in the format `docker save` (Docker
// 20.10) writes. Nothing is downloaded. Images are cached under
// os.TempDir()/berth-testcache/images keyed by their inputs, built aside and
// renamed into place, so concurrent test binaries share them; callers must
// treat cached images as read-only.
package images
