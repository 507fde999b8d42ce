// EXPECT: 7:20: error: value 300 does not fit in 'ipv4.ttl' (bit<8>)
// A constant whose value (300) does not fit the bit<8> field it is assigned to.
const DEFAULT_TTL = 300;

nf ttl_reset {
    action reset_ttl() {
        ipv4.ttl = DEFAULT_TTL;
    }
    apply { reset_ttl(); }
}
