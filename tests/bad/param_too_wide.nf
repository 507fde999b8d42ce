// EXPECT: 5:20: error: 'ttl' is bit<16>; 'ipv4.ttl' is only bit<8>
// A bit<16> parameter assigned to the bit<8> field ipv4.ttl.
nf ttl_set {
    action set_ttl(ttl: bit<16>) {
        ipv4.ttl = ttl;
    }
    apply { set_ttl(64); }
}
