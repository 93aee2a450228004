package bench

import (
	"strings"
	"testing"
)

func TestReplaceMarked(t *testing.T) {
	const b, e = "<!-- x -->", "<!-- /x -->"
	for _, tc := range []struct {
		name, doc, body, want, wantErr string
	}{
		{name: "replace", doc: "# A\n\n" + b + "\nold\ntable\n" + e + "\n\n# B\n", body: "new",
			want: "# A\n\n" + b + "\nnew\n" + e + "\n\n# B\n"},
		{name: "empty between", doc: b + "\n" + e + "\n", body: "t\n", want: b + "\nt\n" + e + "\n"},
		{name: "no markers", doc: "# A\n", body: "t", wantErr: "not found"},
		{name: "only begin", doc: b + "\nold\n", body: "t", wantErr: "not found"},
		{name: "reversed", doc: e + "\n" + b + "\n", body: "t", wantErr: "comes before"},
		{name: "twice", doc: b + "\n" + e + "\n" + b + "\n" + e + "\n", body: "t", wantErr: "once each"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReplaceMarked(tc.doc, b, e, tc.body)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
