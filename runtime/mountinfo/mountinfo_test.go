package mountinfo

import "testing"

func TestParse(t *testing.T) {
	text := `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 22 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 22 0:37 /sub /mnt/with\040space rw - cgroup2 cgroup2 rw
`
	es, err := Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 {
		t.Fatalf("%d entries", len(es))
	}
	if e := es[1]; e.ID != 31 || e.Parent != 22 || e.FSType != "cgroup" || e.SuperOptions != "rw,cpu" || e.Mountpoint != "/sys/fs/cgroup/cpu" {
		t.Errorf("cpu entry %+v", e)
	}
	if e := es[2]; e.Mountpoint != "/mnt/with space" || e.Root != "/sub" {
		t.Errorf("escaped entry %+v", e)
	}
	if got := MountPointOf(es, "/mnt/with space/x/y"); got != "/mnt/with space" {
		t.Errorf("MountPointOf = %q", got)
	}
	if got := MountPointOf(es, "/sys/fs/cgroupx"); got != "/" {
		t.Errorf("MountPointOf prefix-but-not-parent = %q", got)
	}
	if _, err := Parse("garbage\n"); err == nil {
		t.Error("malformed line accepted")
	}
}

func TestReadSelf(t *testing.T) {
	es, err := Read()
	if err != nil || len(es) == 0 || MountPointOf(es, "/proc/self") != "/proc" {
		t.Fatalf("Read: %v, %d entries", err, len(es))
	}
}

func TestUnder(t *testing.T) {
	es, _ := Parse("1 0 0:1 / /a rw - x x rw\n2 1 0:2 / /a/b rw - x x rw\n3 0 0:3 / /ab rw - x x rw\n")
	got := Under(es, "/a")
	if len(got) != 2 || got[0] != "/a/b" || got[1] != "/a" {
		t.Fatalf("Under(/a) = %v", got)
	}
}
