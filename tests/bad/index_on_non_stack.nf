// EXPECT: 6:13: error: 'ipv4' is not a header stack
// ipv4 is not a header stack.
nf ttl_check {
    action expired() { to_hypervisor(1); }
    apply {
        if (ipv4[0].ttl <= 1) {
            expired();
        }
    }
}
