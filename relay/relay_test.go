package relay

import (
	"testing"

	"github.com/mapt-go/mapt/domainfile"
)

func TestTranslatorConfigs(t *testing.T) {
	f, err := domainfile.Load("../domainfile/testdata/seed.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := translatorConfigs(f)
	if err != nil || len(cfgs) != 1 || len(cfgs[0].FMRs) != 1 || cfgs[0].DMR.String() != "64:ff9b::/96" || cfgs[0].Capacity != 1024 {
		t.Fatalf("cfgs = %+v, %v", cfgs, err)
	}
	// Two DMRs: one translator each, rules grouped by their domain's DMR.
	f, err = domainfile.Load("../domainfile/testdata/multi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err = translatorConfigs(f)
	if err != nil || len(cfgs) != 2 {
		t.Fatalf("cfgs = %+v, %v", cfgs, err)
	}
	if cfgs[0].DMR.String() != "2001:db8:ffff::/64" || len(cfgs[0].FMRs) != 1 || cfgs[1].DMR.String() != "64:ff9b::/96" || len(cfgs[1].FMRs) != 2 {
		t.Fatalf("grouping: %+v", cfgs)
	}
	for _, c := range cfgs {
		if c.ICMPRate != 20 || c.LowestIPv6MTU != 1400 || c.ICMPSource.String() != "198.51.100.1" || c.FastPath ||
			c.TrafficClass.String() != "0x00" || c.TOS.String() != "0xb8" {
			t.Errorf("br settings not passed on: rate %d, lowest-ipv6-mtu %d, icmp source %v, traffic-class %v, tos %v",
				c.ICMPRate, c.LowestIPv6MTU, c.ICMPSource, c.TrafficClass, c.TOS)
		}
	}
}
