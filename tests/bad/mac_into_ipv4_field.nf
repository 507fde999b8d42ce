// EXPECT: 7:20: error: a MAC address is 48 bits; 'ipv4.src' is bit<32>
// A MAC address assigned to an IPv4 field (ipv4.src is bit<32>).
const GATEWAY_MAC = 02:00:00:00:00:fe;

nf snat {
    action rewrite() {
        ipv4.src = GATEWAY_MAC;
    }
    apply { rewrite(); }
}
