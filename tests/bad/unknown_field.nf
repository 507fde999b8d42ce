// EXPECT: 6:13: error: unknown field 'time_to_live' in header 'ipv4'
// A field that the header does not have (ipv4 has 'ttl').
nf ttl_check {
    action expired() { to_hypervisor(1); }
    apply {
        if (ipv4.time_to_live <= 1) {
            expired();
        }
    }
}
