// EXPECT: 6:25: error: value 256 does not fit in 'ipv4.ttl' (bit<8>)
// A comparison with a constant that ipv4.ttl (bit<8>) can never hold.
nf ttl_check {
    action expired() { to_hypervisor(1); }
    apply {
        if (ipv4.ttl == 256) {
            expired();
        }
    }
}
