// EXPECT: 5:20: error: value 300 does not fit in 'ipv4.ttl' (bit<8>)
// 300 does not fit in ipv4.ttl (bit<8>).
nf ttl_reset {
    action reset_ttl() {
        ipv4.ttl = 300;
    }
    apply { reset_ttl(); }
}
