package volume_test

import (
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
)

// TestVolumeAPI: the /volumes routes' statuses and bodies, as dockerd's.
func TestVolumeAPI(t *testing.T) {
	d := daemon(t)
	r := raw(t, d, "POST", "/volumes/create", `{"Name":"api1","Labels":{"k":"v"},"DriverOpts":{"type":"tmpfs","device":"tmpfs"}}`)
	var v map[string]any
	if r.Status != 201 || json.Unmarshal([]byte(r.Body), &v) != nil || v["Name"] != "api1" || v["Driver"] != "local" || v["Scope"] != "local" ||
		!strings.HasSuffix(v["Mountpoint"].(string), "/volumes/api1/_data") || v["CreatedAt"] == "" {
		t.Errorf("create: %d %s", r.Status, r.Body)
	}
	if r := raw(t, d, "POST", "/volumes/create", `{}`); r.Status != 201 || !strings.Contains(r.Body, `"Name":"`) {
		t.Errorf("create without a name: %d %s", r.Status, r.Body)
	}
	if r := raw(t, d, "GET", "/volumes/api1", ""); r.Status != 200 || !strings.Contains(r.Body, `"Labels":{"k":"v"}`) {
		t.Errorf("inspect: %d %s", r.Status, r.Body)
	}
	if r := raw(t, d, "GET", "/volumes/nosuch", ""); r.Status != 404 || r.Message(t) != "get nosuch: no such volume" {
		t.Errorf("inspect missing: %d %s", r.Status, r.Body)
	}
	if r := raw(t, d, "POST", "/volumes/create", `{"Name":"a/b"}`); r.Status != 400 {
		t.Errorf("create a/b: %d %s", r.Status, r.Body)
	}
	if r := raw(t, d, "POST", "/volumes/create", `{"Name":`); r.Status != 400 {
		t.Errorf("create with bad JSON: %d %s", r.Status, r.Body)
	}
	q := func(f string) string { return "?filters=" + url.QueryEscape(f) }
	if r := raw(t, d, "GET", "/volumes"+q(`{"label":["k=v"]}`), ""); r.Status != 200 || !strings.Contains(r.Body, `"Name":"api1"`) || strings.Count(r.Body, `"Name"`) != 1 || !strings.Contains(r.Body, `"Warnings":null`) {
		t.Errorf("list label=k=v: %d %s", r.Status, r.Body)
	}
	if r := raw(t, d, "GET", "/volumes"+q(`{"nope":["x"]}`), ""); r.Status != 400 || r.Message(t) != "invalid filter 'nope'" {
		t.Errorf("list with a bad filter: %d %s", r.Status, r.Body)
	}
	// API 1.42+: prune takes anonymous volumes only, unless all=true.
	if r := raw(t, d, "POST", "/v1.43/volumes/prune", ""); r.Status != 200 || !strings.Contains(r.Body, `"VolumesDeleted":null`) {
		t.Errorf("prune (1.43): %d %s", r.Status, r.Body)
	}
	if r := raw(t, d, "POST", "/v1.43/volumes/prune"+q(`{"all":["true"],"label":["k"]}`), ""); r.Status != 200 || r.Body != `{"VolumesDeleted":["api1"],"SpaceReclaimed":0}`+"\n" {
		t.Errorf("prune all=true label=k: %d %s", r.Status, r.Body)
	}
	if r := raw(t, d, "POST", "/v1.41/volumes/prune", ""); r.Status != 200 || !strings.Contains(r.Body, `"VolumesDeleted":["`) {
		t.Errorf("prune (1.41) of the unnamed one: %d %s", r.Status, r.Body)
	}
	if r := raw(t, d, "DELETE", "/volumes/nosuch", ""); r.Status != 404 {
		t.Errorf("delete missing: %d %s", r.Status, r.Body)
	}
	if r := raw(t, d, "DELETE", "/volumes/nosuch?force=1", ""); r.Status != 204 {
		t.Errorf("delete -f missing: %d %s", r.Status, r.Body)
	}
	raw(t, d, "POST", "/volumes/create", `{"Name":"api2"}`)
	if r := raw(t, d, "DELETE", "/volumes/api2", ""); r.Status != 204 {
		t.Errorf("delete: %d %s", r.Status, r.Body)
	}
}

// TestCreateMountpointVersion: bind create-mountpoint makes the missing
// source from API 1.42 on, and is unknown to 1.41 clients.
func TestCreateMountpointVersion(t *testing.T) {
	d := daemon(t)
	src := t.TempDir() + "/made"
	body := `{"Image":"busybox","Cmd":["true"],"HostConfig":{"Mounts":[{"Type":"bind","Source":"` + src + `","Target":"/m","BindOptions":{"CreateMountpoint":true}}]}}`
	if r := raw(t, d, "POST", "/v1.41/containers/create", body); r.Status != 400 || !strings.Contains(r.Message(t), "bind source path does not exist") {
		t.Errorf("1.41 create-mountpoint: %d %s", r.Status, r.Body)
	}
	r := raw(t, d, "POST", "/v1.43/containers/create?name=cm", body)
	if r.Status != 201 {
		t.Fatalf("1.43 create-mountpoint: %d %s", r.Status, r.Body)
	}
	d.Must(t, "start", "cm")
	if _, err := os.Stat(src); err != nil {
		t.Errorf("create-mountpoint did not make the source: %v", err)
	}
	d.Must(t, "rm", "cm")
}
