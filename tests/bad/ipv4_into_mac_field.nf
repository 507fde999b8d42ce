// EXPECT: 5:24: error: an IPv4 address is 32 bits; 'ethernet.dst' is bit<48>
// An IPv4 address assigned to a MAC field (ethernet.dst is bit<48>).
nf rewrite {
    action to_gateway() {
        ethernet.dst = 10.0.0.1;
    }
    apply { to_gateway(); }
}
