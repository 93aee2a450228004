package s46

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv6"
)

// Every parser of received bytes has a fuzz target: ParseContainer (and
// through it Domain and every encapsulated option), each option's
// FromBytes on its own, and SplitOptions. None may panic, an error must
// carry the package prefix, and what parses must re-encode stably.

// wantPrefix fails t unless err is nil or carries the package prefix.
func wantPrefix(t *testing.T, err error) {
	t.Helper()
	if err != nil && !strings.HasPrefix(err.Error(), "s46: ") {
		t.Fatalf("error %q lacks the package prefix", err)
	}
}

// decodes reports whether o.FromBytes(b) succeeds; its error must carry
// the package prefix.
func decodes(t *testing.T, o dhcpv6.Option, b []byte) bool {
	t.Helper()
	err := o.FromBytes(b)
	wantPrefix(t, err)
	return err == nil
}

// addHex adds one seed input per hex string.
func addHex(f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add(unhex(f, s))
	}
}

// FuzzParseContainer feeds arbitrary container payloads to the parser. It
// must never panic; whatever parses must re-encode stably, and whatever
// yields a domain must survive encode -> parse unchanged.
func FuzzParseContainer(f *testing.F) {
	addHex(f,
		keaSeedOption95[9:],
		rule(seedRule+seedPP)+seedDMR,
		rule(otherRule)+rule("01 00 20 c0000212 38 20010db8001234"+"005d 0004 06 08 3400")+"005b 0005 20 20010db8",
		unknownOpt+rule(seedRule+unknownOpt+seedPP)+seedDMR,
		rule(seedRule+"005d 0004 00 04 0000"),
		"005a 0010 20010db8000000000000000000000001",
		"",
	)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseContainer(OptionContMAPT, b)
		wantPrefix(t, err)
		if err != nil {
			return
		}
		enc := c.ToBytes()
		c2, err := ParseContainer(OptionContMAPT, enc)
		if err != nil {
			t.Fatalf("re-encoded container %x does not parse: %v", enc, err)
		}
		if enc2 := c2.ToBytes(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc, enc2)
		}
		d, err := c.Domain()
		wantPrefix(t, err)
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

// FuzzRuleOption feeds arbitrary OPTION_S46_RULE payloads to FromBytes
// and what decodes to Rule: the option must decode back from its own
// encoding unchanged, and a valid rule must survive NewRuleOption.
func FuzzRuleOption(f *testing.F) {
	addHex(f,
		seedRule+seedPP,
		otherRule,
		seedRule+unknownOpt+seedPP,
		"00 00 20 c0000212 38 20010db8001234"+"005d 0004 06 08 3400",
		"01 28 00 00000000 20 20010db8"+"005d 0004 04 00 0000",
		seedRule+seedPP+seedPP,
		"00 0d 18 c00002ff 33 20010db800ffff",
		"00 0d 18 c0000200",
	)
	f.Fuzz(func(t *testing.T, b []byte) {
		var o RuleOption
		if !decodes(t, &o, b) {
			return
		}
		var o2 RuleOption
		if err := o2.FromBytes(o.ToBytes()); err != nil {
			t.Fatalf("re-encoded rule %x does not parse: %v", o.ToBytes(), err)
		}
		if !reflect.DeepEqual(o, o2) {
			t.Fatalf("round trip changed the option:\n%s\n%s", &o, &o2)
		}
		r, err := o.Rule()
		wantPrefix(t, err)
		if err != nil {
			return
		}
		r2, err := NewRuleOption(r).Rule()
		if err != nil || r2 != r {
			t.Fatalf("rule %s does not round-trip: %s, %v", r, r2, err)
		}
	})
}

// FuzzPortParamsOption feeds arbitrary OPTION_S46_PORTPARAMS payloads to
// FromBytes: what decodes must decode back from its own encoding, and
// with a PSID (psid-len > 0) encode to the very bytes it came from.
func FuzzPortParamsOption(f *testing.F) {
	addHex(f, "06 08 3400", "00 05 d800", "00 10 abcd", "06 00 1234", "06 08 0034", "10 00 0000", "00 11 0000", "00 00 00")
	f.Fuzz(func(t *testing.T, b []byte) {
		var o PortParamsOption
		if !decodes(t, &o, b) {
			return
		}
		enc := o.ToBytes()
		var o2 PortParamsOption
		if err := o2.FromBytes(enc); err != nil || o2 != o {
			t.Fatalf("%s: re-encoded as %x, decoded as %s, %v", &o, enc, &o2, err)
		}
		if o.PSIDLen > 0 && !bytes.Equal(enc, b) {
			t.Fatalf("%x decoded as %s, encoded as %x", b, &o, enc)
		}
	})
}

// FuzzDMROption feeds arbitrary OPTION_S46_DMR payloads to FromBytes:
// what decodes must be a masked IPv6 prefix that encodes to as many bytes
// as it came in and decodes back unchanged.
func FuzzDMROption(f *testing.F) {
	addHex(f, seedDMR[10:], "20 20010db8", "00", "80 20010db8000000000000000000000001", "21 0064ff9b00", "", "60 0064ff9b000000000000000000")
	f.Fuzz(func(t *testing.T, b []byte) {
		var o DMROption
		if !decodes(t, &o, b) {
			return
		}
		if !o.Prefix.Addr().Is6() || o.Prefix != o.Prefix.Masked() {
			t.Fatalf("%x decoded as %s", b, o.Prefix)
		}
		enc := o.ToBytes()
		var o2 DMROption
		if err := o2.FromBytes(enc); err != nil || o2 != o || len(enc) != len(b) {
			t.Fatalf("%x: decoded as %s, re-encoded as %x, decoded as %s, %v", b, o.Prefix, enc, o2.Prefix, err)
		}
	})
}

// FuzzBROption feeds arbitrary OPTION_S46_BR payloads to FromBytes: only
// 16 bytes decode, and they encode to themselves.
func FuzzBROption(f *testing.F) {
	addHex(f, "20010db8000000000000000000000001", "20010db8", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		var o BROption
		ok := decodes(t, &o, b)
		if ok != (len(b) == 16) {
			t.Fatalf("%d bytes: decoded %v", len(b), ok)
		}
		if ok && !bytes.Equal(o.ToBytes(), b) {
			t.Fatalf("%x decoded as %s, encoded as %x", b, o.Addr, o.ToBytes())
		}
	})
}

// FuzzSplitOptions feeds arbitrary runs of options to SplitOptions: what
// splits must frame back to exactly the input, and an error must name
// the run it was given.
func FuzzSplitOptions(f *testing.F) {
	addHex(f, keaSeedOption95, rule(seedRule+seedPP)+seedDMR, unknownOpt, "005b00", "005b 00ff 60", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		tlvs, err := SplitOptions("run", b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "run: ") {
				t.Fatalf("error %q does not name the run", err)
			}
			return
		}
		var enc []byte
		for _, o := range tlvs {
			enc = appendOption(enc, &dhcpv6.OptionGeneric{OptionCode: o.Code, OptionData: o.Data})
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("%x split into %d options framed back as %x", b, len(tlvs), enc)
		}
	})
}
