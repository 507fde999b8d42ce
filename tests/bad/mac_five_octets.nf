// EXPECT: 3:17: error: '02:00:00:00:aa' looks like a MAC address, but has 5 octets; a MAC address has 6 (e.g. 02:00:00:00:00:aa)
// A MAC address with an octet missing.
const VM1_MAC = 02:00:00:00:aa;
