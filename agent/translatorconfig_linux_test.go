package agent

import (
	"net/netip"
	"testing"

	"github.com/mapt-go/mapt/mapt"
	"github.com/mapt-go/mapt/nat"
)

// TestTranslatorConfig: the agent's settings reach the translator, and
// the mesh alias goes only with a shared address.
func TestTranslatorConfig(t *testing.T) {
	dmr := netip.MustParsePrefix("64:ff9b::/96")
	k := &linuxKernel{cfg: Config{LowestIPv6MTU: 1400, ICMPRate: 20}}
	shared, err := mapt.MustParseRule("2001:db8:ce::/51,192.0.2.0/24,13,a=0").Derive(netip.MustParsePrefix("2001:db8:ce:774::/64"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := k.translatorConfig(&Desired{Binding: shared, DMR: dmr})
	if cfg.LowestIPv6MTU != 1400 || cfg.ICMPRate != 20 || cfg.MeshAlias != nat.MeshAlias || cfg.DMR != dmr {
		t.Fatalf("translator config %+v", cfg)
	}
	full, err := mapt.MustParseRule("2001:db8:500::/40,198.19.0.0/16,16").Derive(netip.MustParsePrefix("2001:db8:5a7:1200::/56"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg := k.translatorConfig(&Desired{Binding: full, DMR: dmr}); cfg.MeshAlias.IsValid() {
		t.Fatalf("mesh alias %v for an unshared address", cfg.MeshAlias)
	}
}
