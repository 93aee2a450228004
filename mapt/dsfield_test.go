package mapt

import "testing"

func TestParseDSField(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want DSField
		str  string
	}{
		{"copy", DSField{}, "copy"},
		{"0", DSField{Set: true}, "0x00"},
		{"184", DSField{Set: true, Value: 0xb8}, "0xb8"},
		{"0xb8", DSField{Set: true, Value: 0xb8}, "0xb8"},
		{"255", DSField{Set: true, Value: 255}, "0xff"},
	} {
		got, err := ParseDSField(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseDSField(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if got.String() != tc.str {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), tc.str)
		}
	}
	for _, bad := range []string{"", "256", "-1", "zero", "0x100", "Copy", "1.5"} {
		if got, err := ParseDSField(bad); err == nil {
			t.Errorf("ParseDSField(%q) = %+v, want an error", bad, got)
		}
	}
}

func FuzzParseDSField(f *testing.F) {
	for _, s := range []string{"copy", "0", "0xb8", "255", "256"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDSField(s)
		if err != nil {
			return
		}
		d2, err := ParseDSField(d.String())
		if err != nil || d2 != d {
			t.Fatalf("String() %q does not round-trip: %+v %v", d.String(), d2, err)
		}
	})
}
