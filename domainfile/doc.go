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
//	      interface: eth0          # where Kea listens (NAME or NAME/ADDRESS)
//	      relay:                   # behind relays: select by relay address
//	        - 2001:db8:6::1
//	      interface-id: port7      # ... or by the relays' Interface-ID
//	      server-duid: 00:02:...   # DUID-LLT, -EN or -LL; default a DUID-LL
//	      valid-lifetime: 1d       # seconds or N s/m/h/d; Kea's defaults
//	      preferred-lifetime: 12h  # when absent
//	      renew-timer: 6h
//	      rebind-timer: 9h
//	      dns-servers:             # options 23 and 24
//	        - 2001:db8::53
//	      domain-search:
//	        - isp.example
//	      ntp-servers:             # option 56: addresses or names
//	        - ntp.isp.example
//	      mape-br: 2001:db8::1     # offer the rules as MAP-E too
//	      dslite-aftr: aftr.example # offer DS-Lite too
//	      s46-priority:            # option 111 order (RFC 8026)
//	        - mapt
//	        - mape
//	        - dslite
//	      reservations:            # a prefix for one client's DUID; for a
//	        - duid: 00:03:00:01:02:00:00:00:01:1b   # 1:1 rule, its rule
//	          prefix: 2001:db8:12:3400::/56
//
// The br section may also hold anycast (table, drain, check-interval): see
// Anycast.
//
// Domain and rule names are free text; domain names must be unique.
package domainfile
