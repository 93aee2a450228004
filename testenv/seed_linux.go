package testenv

// Seed is the network of Jool's MAP-T tutorial (shared/seed/run-mapt.md),
// with one namespace per CE:
//
//	c1 (192.168.0.4) -- ce11b --+                          +-- s (203.0.113.56)
//	                            +-- sw (bridge) -- br -----+
//	c2 (192.168.0.4) -- ce774 --+   2001:db8:6::/64        203.0.113.0/24
//
// Each CE has its LAN on "lan" (192.168.0.1/24) and its WAN on "wan"
// (2001:db8:6::11b/64, 2001:db8:6::774/64), with the IPv6 default route
// via the BR, as router advertisements would set it. The BR has
// 2001:db8:6::1/64 on "eth0" (CE side) and 203.0.113.1/24 on "eth1". s
// routes 192.0.2.0/24 via the BR. Nothing MAP-T is configured: that is
// the agents' and the BR's job.
type Seed struct {
	Lab                      *Lab
	C1, C2, CE11b, CE774, BR *NS
	S, Switch                *NS
}

// Seed addresses.
const (
	SeedServer   = "203.0.113.56"
	SeedBRv6     = "2001:db8:6::1"
	SeedCE11bWAN = "2001:db8:6::11b"
	SeedCE774WAN = "2001:db8:6::774"
)

// NewSeed builds the seed network in a new lab.
func NewSeed(t T) *Seed {
	t.Helper()
	l := New(t)
	s := &Seed{Lab: l}
	s.Switch = l.NS("sw")
	s.Switch.Bridge("br0")
	s.BR = l.NS("br")
	l.Veth(s.Switch, "p-br", s.BR, "eth0")
	s.Switch.MustExec("ip", "link", "set", "dev", "p-br", "master", "br0")
	s.BR.Addr("eth0", SeedBRv6+"/64")
	s.S = l.NS("s")
	l.Veth(s.BR, "eth1", s.S, "eth0")
	s.BR.Addr("eth1", "203.0.113.1/24")
	s.S.Addr("eth0", SeedServer+"/24")
	s.S.Route("192.0.2.0/24", "via", "203.0.113.1")
	s.BR.Forwarding()
	s.CE11b, s.C1 = s.ce("ce11b", "c1", SeedCE11bWAN)
	s.CE774, s.C2 = s.ce("ce774", "c2", SeedCE774WAN)
	return s
}

func (s *Seed) ce(name, client, wan string) (*NS, *NS) {
	l := s.Lab
	ce := l.NS(name)
	l.Veth(s.Switch, "p-"+name, ce, "wan")
	s.Switch.MustExec("ip", "link", "set", "dev", "p-"+name, "master", "br0")
	ce.Addr("wan", wan+"/64")
	ce.Route("default", "via", SeedBRv6)
	ce.Forwarding()
	c := l.NS(client)
	l.Veth(ce, "lan", c, "eth0")
	ce.Addr("lan", "192.168.0.1/24")
	c.Addr("eth0", "192.168.0.4/24")
	c.Route("default", "via", "192.168.0.1")
	return ce, c
}

// RouteDelegated routes a delegated prefix to a CE's WAN address at the
// BR, as the ISP's edge does for every IA_PD lease.
func (s *Seed) RouteDelegated(prefix, via string) {
	s.BR.Route(prefix, "via", via)
}
