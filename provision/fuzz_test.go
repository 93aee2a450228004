package provision

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzParseContainer feeds arbitrary container payloads to the parser. It
// must never panic; whatever parses must re-encode stably, and whatever
// yields a domain must survive encode -> parse unchanged.
func FuzzParseContainer(f *testing.F) {
	for _, s := range []string{
		keaSeedOption95[9:],
		rule(seedRule+seedPP) + seedDMR,
		rule(otherRule) + rule("01 00 20 c0000212 38 20010db8001234"+"005d 0004 06 08 3400") + "005b 0005 20 20010db8",
		unknownOpt + rule(seedRule+unknownOpt+seedPP) + seedDMR,
		rule(seedRule + "005d 0004 00 04 0000"),
		"005a 0010 20010db8000000000000000000000001",
		"",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseContainer(OptionS46ContMAPT, b)
		if err != nil {
			return
		}
		enc := c.ToBytes()
		c2, err := ParseContainer(OptionS46ContMAPT, enc)
		if err != nil {
			t.Fatalf("re-encoded container %x does not parse: %v", enc, err)
		}
		if enc2 := c2.ToBytes(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc, enc2)
		}
		d, err := c.Domain()
		if err != nil {
			return
		}
		d2, err := ParseMAPT(NewMAPTContainer(d).ToBytes())
		if err != nil {
			t.Fatalf("domain %+v does not round-trip: %v", d, err)
		}
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("round trip changed the domain:\n%+v\n%+v", d, d2)
		}
	})
}
