// common.nf — constants shared by the example programs: IP protocol numbers,
// well-known ports, the hypervisor punt reasons, DSCP classes and the
// addresses of this host's uplink. Only constants: importing it declares
// nothing else, so any example may import it.

// IP protocol / IPv6 next-header numbers.
const PROTO_ICMP = 1;
const PROTO_TCP = 6;
const PROTO_UDP = 17;
const PROTO_ICMPV6 = 58;

// Well-known L4 ports.
const PORT_SSH = 22;
const PORT_DNS = 53;
const PORT_HTTP = 80;
const PORT_HTTPS = 443;
const PORT_BGP = 179;
const PORT_NTP = 123;
const PORT_GENEVE = 6081;
const EPHEMERAL_LOW = 32768;
const EPHEMERAL_HIGH = 65535;

// Reasons passed to to_hypervisor(); the hypervisor's slow path dispatches on them.
const PUNT_TTL_EXPIRED = 1;
const PUNT_NO_ROUTE = 2;
const PUNT_ACL = 3;
const PUNT_UNKNOWN_TUNNEL = 4;

// DSCP classes (RFC 4594).
const DSCP_BEST_EFFORT = 0;
const DSCP_AF21 = 18;
const DSCP_AF41 = 34;
const DSCP_EF = 46;

// NIC ports: 0 and 1 are the uplinks, 2.. the VM-facing representors.
const UPLINK0 = 0;
const UPLINK1 = 1;
const VM_PORT_BASE = 2;

// This host on the underlay.
const HOST_MAC = 02:00:c0:a8:01:01;
const HOST_IP = 192.168.1.1;
const HOST_IP6 = 2001:db8:100::1;
const TOR_MAC = 02:00:c0:a8:01:fe;
