package format

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/image"
)

// Default formats of docker images.
const (
	ImagesTable        = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	ImagesTableDigests = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
	ImagesQuiet        = "{{.ID}}"
)

// ImageHeader names the columns of docker images.
var ImageHeader = map[string]string{
	"Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST", "ID": "IMAGE ID",
	"CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
	"Containers": "CONTAINERS", "VirtualSize": "VIRTUAL SIZE", "SharedSize": "SHARED SIZE",
	"UniqueSize": "UNIQUE SIZE",
}

// Image is one row of docker images: one repository:tag of an image.
type Image struct {
	I                image.Summary
	Repo, TagV, DigV string
	Trunc            bool
	Now              time.Time
}

// Header returns docker images's column names.
func (i Image) Header() map[string]string { return ImageHeader }

// MarshalJSON is what {{json .}} prints.
func (i Image) MarshalJSON() ([]byte, error) { return marshalMethods(i) }

// ID is the image id, 12 characters unless --no-trunc.
func (i Image) ID() string {
	if i.Trunc {
		return TruncateID(i.I.ID)
	}
	return i.I.ID
}

// Repository is the familiar repository name or <none>.
func (i Image) Repository() string { return i.Repo }

// Tag is the tag or <none>.
func (i Image) Tag() string { return i.TagV }

// Digest is the repository digest or <none>.
func (i Image) Digest() string { return i.DigV }

// CreatedSince is "<duration> ago".
func (i Image) CreatedSince() string {
	now := i.Now
	if now.IsZero() {
		now = time.Now().UTC()
	}
	return units.HumanDuration(now.Sub(time.Unix(i.I.Created, 0))) + " ago"
}

// CreatedAt is the creation time as Go prints a time.
func (i Image) CreatedAt() string { return time.Unix(i.I.Created, 0).String() }

// Size is the image's size, human readable.
func (i Image) Size() string { return units.HumanSizeWithPrecision(float64(i.I.Size), 3) }

// VirtualSize is the image size with Docker's default precision.
func (i Image) VirtualSize() string { return units.HumanSize(float64(i.I.Size)) }

// Containers counts the containers of the image, N/A when unknown.
func (i Image) Containers() string {
	if i.I.Containers == -1 {
		return "N/A"
	}
	return strconv.FormatInt(i.I.Containers, 10)
}

// SharedSize is the size shared with other images, N/A when unknown.
func (i Image) SharedSize() string {
	if i.I.SharedSize == -1 {
		return "N/A"
	}
	return units.HumanSize(float64(i.I.SharedSize))
}

// UniqueSize is Size minus SharedSize, N/A when unknown.
func (i Image) UniqueSize() string {
	if i.I.SharedSize == -1 {
		return "N/A"
	}
	return units.HumanSize(float64(i.I.Size - i.I.SharedSize))
}

// ImageRows expands images into docker images's rows: one per
// repository:tag (and per digest with showDigests), <none> for dangling.
func ImageRows(images []image.Summary, trunc, showDigests bool) []Context {
	var rows []Context
	for _, img := range images {
		tags := map[string][]string{}
		digests := map[string][]string{}
		for _, s := range img.RepoTags {
			ref, err := reference.ParseNormalizedNamed(s)
			if err != nil {
				continue
			}
			if nt, ok := ref.(reference.NamedTagged); ok {
				name := reference.FamiliarName(ref)
				tags[name] = append(tags[name], nt.Tag())
			}
		}
		for _, s := range img.RepoDigests {
			ref, err := reference.ParseNormalizedNamed(s)
			if err != nil {
				continue
			}
			if c, ok := ref.(reference.Canonical); ok {
				name := reference.FamiliarName(ref)
				digests[name] = append(digests[name], c.Digest().String())
			}
		}
		add := func(repo, tag, dig string) {
			rows = append(rows, Image{I: img, Repo: repo, TagV: tag, DigV: dig, Trunc: trunc})
		}
		if len(tags) == 0 && len(digests) == 0 {
			add("<none>", "<none>", "<none>")
			continue
		}
		for _, repo := range sortedKeys(tags) {
			ds := digests[repo]
			delete(digests, repo)
			if !showDigests {
				ds = nil
			}
			sort.Strings(tags[repo])
			for _, tag := range tags[repo] {
				if len(ds) == 0 {
					add(repo, tag, "<none>")
					continue
				}
				for _, d := range ds {
					add(repo, tag, d)
				}
			}
		}
		for _, repo := range sortedKeys(digests) {
			if showDigests {
				for _, d := range digests[repo] {
					add(repo, "<none>", d)
				}
			} else {
				add(repo, "<none>", "")
			}
		}
	}
	return rows
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Default formats of docker history.
const (
	HistoryTable = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
	HistoryQuiet = "{{.ID}}"
)

// HistoryHeader names the columns of docker history.
var HistoryHeader = map[string]string{
	"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
	"CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT",
}

// History is one row of docker history.
type History struct {
	H     image.HistoryResponseItem
	Trunc bool
	Human bool
	Now   time.Time
}

// Header returns docker history's column names.
func (h History) Header() map[string]string { return HistoryHeader }

// MarshalJSON is what {{json .}} prints.
func (h History) MarshalJSON() ([]byte, error) { return marshalMethods(h) }

// ID is the layer's image id or <missing>.
func (h History) ID() string {
	if h.Trunc && h.H.ID != "<missing>" {
		return TruncateID(h.H.ID)
	}
	return h.H.ID
}

// CreatedAt is RFC 3339 time.
func (h History) CreatedAt() string { return time.Unix(h.H.Created, 0).Format(time.RFC3339) }

// CreatedSince is "<duration> ago" (CreatedAt with -H=false).
func (h History) CreatedSince() string {
	if !h.Human {
		return h.CreatedAt()
	}
	now := h.Now
	if now.IsZero() {
		now = time.Now().UTC()
	}
	return units.HumanDuration(now.Sub(time.Unix(h.H.Created, 0))) + " ago"
}

// CreatedBy is the command that made the layer, 45 characters truncated.
func (h History) CreatedBy() string {
	s := strings.ReplaceAll(h.H.CreatedBy, "\t", " ")
	if h.Trunc {
		return Ellipsis(s, 45)
	}
	return s
}

// Size is the layer size (bytes with -H=false).
func (h History) Size() string {
	if h.Human {
		return units.HumanSizeWithPrecision(float64(h.H.Size), 3)
	}
	return strconv.FormatInt(h.H.Size, 10)
}

// Comment is the layer's comment.
func (h History) Comment() string { return h.H.Comment }
