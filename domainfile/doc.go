// Package domainfile reads the MAP domain file: the one description of
// MAP-T domains that the BR serves, that `ce-agent --domain` uses where the
// network has no DHCPv6 S46 options, and from which `br kea-config`
// produces the ISP's DHCPv6 server configuration (RFC 7598 options), so the
// CEs and the BR can never disagree.
//
// The file is YAML, in the block style every YAML tool writes (see yaml.go
// for the subset read: no anchors, tags or flow collections). Unknown keys, duplicate keys, malformed values,
// impossible rule parameters (RFC 7597 s5) and overlapping rules are
// errors that name the file, the line and the field:
//
//	br:                          # read by br only
//	  ipv6-interface: eth0       # CE-facing side
//	  ipv4-interface: eth1       # IPv4 Internet side
//	  metrics: 127.0.0.1:9724    # Prometheus endpoint (the default)
//	  source-check: neighbor     # CE packets only from the neighbour their
//	                             # source is routed to (default off)
//	domains:
//	  - name: seed
//	    dmr: 64:ff9b::/96        # RFC 6052 prefix: /32 /40 /48 /56 /64 /96
//	    rules:
//	      - ipv6-prefix: 2001:db8:ce::/51
//	        ipv4-prefix: 192.0.2.0/24
//	        ea-len: 13
//	        psid-offset: 0       # a; 6 when absent
//	        fmr: true            # forwarding mapping rule (mesh)
//	      - ipv6-prefix: 2001:db8:12:3400::/56
//	        ipv4-prefix: 198.51.100.18/32
//	        ea-len: 0
//	        psid-len: 8          # k, for ea-len 0 only
//	        psid: 0x34           # right-aligned
//	    kea:                     # for br kea-config (optional)
//	      subnet: 2001:db8:6::/64
//	      interface: eth0
//
// Domain and rule names are free text; domain names must be unique.
package domainfile
