package persist

import (
	"strings"
	"testing"
	"time"
)

func TestParseSettings(t *testing.T) {
	cases := []struct {
		spec string
		want Settings
		err  string
	}{
		{"", Settings{}, ""},
		{"mode=write-behind delay=500ms batch=10", Settings{Mode: ModeWriteBehind, Delay: 500 * time.Millisecond, Batch: 10}, ""},
		{"mode=read negative_ttl=2000", Settings{Mode: ModeRead, NegativeTTL: 2 * time.Second}, ""},
		{"MODE=Write-Through store=file:///x max_dirty=5 max_dirty_bytes=1024", Settings{Mode: ModeWriteThrough, Store: "file:///x", MaxDirty: 5, MaxDirtyBytes: 1024}, ""},
		{"mode=sometimes", Settings{}, "unknown store mode"},
		{"delay=-1", Settings{}, "out of range"},
		{"delay=48h", Settings{}, "out of range"},
		{"batch=0", Settings{}, "at least 1"},
		{"batch=100000", Settings{}, "out of range"},
		{"max_dirty=x", Settings{}, "max_dirty"},
		{"colour=blue", Settings{}, "unknown store setting"},
		{"mode", Settings{}, "not field=value"},
	}
	for _, tc := range cases {
		got, err := ParseSettings(Settings{}, tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one containing %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.spec, got, err, tc.want)
		}
	}
}

// FuzzParseSettings: any spec either fails with an error and changes
// nothing, or gives valid settings whose String form parses back to the
// same settings.
func FuzzParseSettings(f *testing.F) {
	for _, s := range []string{"mode=write-behind delay=1s batch=100 max_dirty=10 max_dirty_bytes=99 negative_ttl=5s",
		"mode=none", "store=s3://b/p?region=x", "delay=1e9", "batch=-1", "mode=read-through store="} {
		f.Add(s)
	}
	base := Settings{Mode: ModeRead, Batch: 7}
	f.Fuzz(func(t *testing.T, spec string) {
		got, err := ParseSettings(base, spec)
		if err != nil {
			if got != base {
				t.Fatalf("%q failed (%v) but changed the settings: %+v", spec, err, got)
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("%q gave invalid settings %+v: %v", spec, got, err)
		}
		full := got.WithDefaults()
		if strings.ContainsAny(full.Store, " \t\n\r\v\f") {
			return // String does not quote a store URL with spaces (a URL has none)
		}
		back, err := ParseSettings(Settings{}, full.String())
		if err != nil {
			t.Fatalf("%q: String form %q does not parse: %v", spec, full.String(), err)
		}
		if back.WithDefaults().String() != full.String() {
			t.Fatalf("%q: %q parses back as %q", spec, full.String(), back.WithDefaults().String())
		}
	})
}
